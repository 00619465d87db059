/* Write-path probe for docs/benchmarks.md: gcc -O2 -pthread -o probe scripts/write-path-probe.c
   ./probe MODE   (writes and removes /work/mmtest, 1 GiB of 1,190-byte records)
   MODE 0 = pwrite per record; 1 = memcpy into a shared mmap of a sparse file;
   2 = as 1, MADV_POPULATE_WRITE 4 MiB ahead in the writing thread; 3 = as 2 on a fallocate()d
   file; 4 = as 1, populated 4 MiB at a time by a second thread kept ahead of the writer;
   5 = records gathered in a 1 MiB buffer, one pwrite per buffer. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static size_t total=1UL<<30, chunk=4<<20; static char*m; static _Atomic size_t pre=0, wpos=0;
static void* prefaulter(void*a){ (void)a; while(pre<total){ size_t p=pre; if(p > wpos + 4*chunk){ usleep(50); continue;} madvise(m+p,chunk,MADV_POPULATE_WRITE); pre=p+chunk;} return 0;}
int main(int argc,char**argv){
  if(argc<2){fprintf(stderr,"usage: probe MODE\n");return 2;}
  size_t rec=1190; char buf[2048]; memset(buf,'x',sizeof buf);
  int mode=atoi(argv[1]);
  unlink("/work/mmtest"); int fd=open("/work/mmtest",O_RDWR|O_CREAT,0644);
  double t0=now();
  if(mode==0){ size_t off=0; while(off+rec<=total){ pwrite(fd,buf,rec,off); off+=rec; } }
  else if(mode==5){ size_t off=0; static char big[1<<20]; size_t n=0; while(off+n+rec<=total){ memcpy(big+n,buf,rec); n+=rec; if(n+rec>sizeof big){pwrite(fd,big,n,off);off+=n;n=0;} } if(n) pwrite(fd,big,n,off); }
  else { ftruncate(fd,total); if(mode==3) fallocate(fd,0,0,total);
    m=mmap(0,total,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
    pthread_t th; if(mode==4) pthread_create(&th,0,prefaulter,0);
    size_t off=0;
    while(off+rec<=total){
      if((mode==2||mode==3) && off+chunk>pre && pre<total){ madvise(m+pre,chunk,MADV_POPULATE_WRITE); pre+=chunk; }
      if(mode==4){ while(off+rec>pre) ; }
      memcpy(m+off,buf,rec); off+=rec; wpos=off; }
    if(mode==4) pthread_join(th,0);
    munmap(m,total);}
  double t=now()-t0; printf("mode %d: %.0f MB/s\n",mode,total/t/1e6); close(fd); unlink("/work/mmtest"); return 0;}
