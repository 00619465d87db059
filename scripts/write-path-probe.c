/* Write-path probe for docs/benchmarks.md: gcc -O2 -o probe scripts/write-path-probe.c; ./probe MODE
   MODE 0 = pwrite per record, 1 = memcpy into a shared mmap, 2 = mmap + MADV_POPULATE_WRITE
   every 4 MiB, 3 = as 2 on a fallocate()d file. Writes and removes /work/mmtest (1 GiB). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <time.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  size_t total=1UL<<30, rec=1100; char buf[2048]; memset(buf,'x',sizeof buf);
  int mode=atoi(argv[1]);
  unlink("/work/mmtest"); int fd=open("/work/mmtest",O_RDWR|O_CREAT,0644);
  double t0=now();
  if(mode==0){ size_t off=0; while(off+rec<=total){ pwrite(fd,buf,rec,off); off+=rec; } }
  else { ftruncate(fd,total); if(mode==3) fallocate(fd,0,0,total);
    char*m=mmap(0,total,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
    size_t off=0, pre=0, chunk=4<<20;
    while(off+rec<=total){
      if(mode>=2 && off+chunk>pre && pre<total){ madvise(m+pre,chunk,MADV_POPULATE_WRITE); pre+=chunk; }
      memcpy(m+off,buf,rec); off+=rec; }
    munmap(m,total);}
  double t=now()-t0; printf("mode %d: %.0f MB/s\n",mode,total/t/1e6); close(fd); unlink("/work/mmtest"); return 0;}
