// pipes-pingpong.c: the same 1-byte ping-pong and 64 KiB-write throughput as
// "ipcplay pipes bench" (raw path), written in C, to compare against on the same machine:
//   gcc -O2 -o /tmp/pp testdata/pipes-pingpong.c && taskset -c 0 /tmp/pp
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static long long now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
static int cmp(const void*a,const void*b){long long x=*(long long*)a,y=*(long long*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int rounds=20000; long long total=256LL<<20; int chunk=64<<10;
  int a[2],b[2]; pipe(a); pipe(b);
  pid_t p=fork();
  if(p==0){char c; close(a[1]); close(b[0]); while(read(a[0],&c,1)==1) write(b[1],&c,1); _exit(0);}
  close(a[0]); close(b[1]);
  long long *s=malloc(sizeof(long long)*rounds); char c='p';
  for(int i=0;i<200;i++){write(a[1],&c,1);read(b[0],&c,1);}
  for(int i=0;i<rounds;i++){long long t=now();write(a[1],&c,1);read(b[0],&c,1);s[i]=now()-t;}
  close(a[1]); waitpid(p,0,0);
  qsort(s,rounds,sizeof(long long),cmp);
  printf("C pingpong median %.2f us p99 %.2f us\n", s[rounds/2]/1000.0, s[rounds*99/100]/1000.0);
  for(int sz=0;sz<2;sz++){
    int q[2]; pipe(q); if(sz) fcntl(q[1],F_SETPIPE_SZ,1<<20);
    int g[2]; pipe(g);
    p=fork();
    if(p==0){close(q[0]); close(g[1]); char *buf=malloc(chunk); memset(buf,'a',chunk); char x; read(g[0],&x,1);
      for(long long left=total;left>0;){ssize_t k=write(q[1],buf,left<chunk?left:chunk); if(k<0)_exit(1); left-=k;} _exit(0);}
    close(q[1]); close(g[0]);
    char *buf=malloc(chunk); long long t=now(); write(g[1],"g",1);
    for(long long got=0;got<total;){ssize_t k=read(q[0],buf,chunk); if(k<=0)break; got+=k;}
    long long el=now()-t; waitpid(p,0,0); close(q[0]); close(g[1]);
    printf("C throughput pipe %s: %.2f GB/s\n", sz?"1MiB":"default", total/(el/1e9)/1e9);
  }
  return 0;
}
