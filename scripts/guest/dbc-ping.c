/*
 * dbc-ping: the test guest's /bin/ping. Busybox 1.35's ping needs a raw socket (root only, no fallback), so the
 * image ships this small static replacement that uses an unprivileged ICMP datagram socket
 * (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), allowed by net.ipv4.ping_group_range, which rcS opens to every
 * group). No setuid, no capabilities: it can do nothing a user could not do with that socket anyway.
 * Options and output follow busybox ping: -4 -c CNT -s SIZE -t TTL -I IFACE|IP -i SECS -W SECS -w SECS -q.
 * Exit status 0 when replies came (all CNT of them with -w), 1 when not, 2 on errors. Root outside
 * ping_group_range gets busybox's raw-socket ping instead.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
  fputs("Usage: ping [-4q] [-c CNT] [-s SIZE] [-t TTL] [-I IFACE|IP] [-i SECS] [-W SECS] [-w SECS] HOST\n", stderr);
  exit(2);
}

static double number(const char *s, double min, double max) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= min && v <= max)) {
    fprintf(stderr, "ping: invalid number '%s'\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  long count = 0, size = 56, ttl = 0;
  double interval = 1.0, waitsec = 10, deadline = 0;
  int quiet = 0, c;
  const char *iface = NULL;
  while ((c = getopt(argc, argv, "4qc:s:t:I:i:W:w:")) != -1) {
    switch (c) {
      case '4': break;
      case 'q': quiet = 1; break;
      case 'c': count = (long)number(optarg, 1, 1e9); break;
      case 's': size = (long)number(optarg, 0, 65500); break;
      case 't': ttl = (long)number(optarg, 1, 255); break;
      case 'I': iface = optarg; break;
      case 'i': interval = number(optarg, 0.2, 1e6); break;
      case 'W': waitsec = number(optarg, 0, 1e6); break;
      case 'w': deadline = number(optarg, 0, 1e6); break;
      default: usage();
    }
  }
  if (optind != argc - 1) usage();
  const char *host = argv[optind];

  struct sockaddr_in dst = {.sin_family = AF_INET};
  if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *res;
    int e = getaddrinfo(host, NULL, &hints, &res);
    if (e) {
      fprintf(stderr, "ping: bad address '%s'\n", host);
      return 2;
    }
    dst.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &dst.sin_addr, ip, sizeof ip);

  int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
  if (fd < 0 && (errno == EACCES || errno == EPERM) && geteuid() == 0) {
    /* root outside ping_group_range: busybox's raw-socket ping works for root */
    argv[0] = "ping";
    execv("/bin/busybox", argv);
  }
  if (fd < 0) {
    if (errno == EACCES || errno == EPERM)
      fputs("ping: ICMP datagram socket not permitted (see net.ipv4.ping_group_range)\n", stderr);
    else
      perror("ping: socket");
    return 2;
  }
  int on = 1;
  setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
  if (ttl) {
    int t = (int)ttl;
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &t, sizeof t) < 0) { perror("ping: IP_TTL"); return 2; }
  }
  if (iface) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, iface, &src.sin_addr) == 1) {
      if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { perror("ping: bind"); return 2; }
    } else if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface) + 1) < 0) {
      perror("ping: SO_BINDTODEVICE");
      return 2;
    }
  }

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  static double sent[65536];
  static unsigned char seen[65536];
  size_t pktlen = sizeof(struct icmphdr) + (size_t)size;
  unsigned char *pkt = calloc(1, pktlen), *buf = malloc(65536);
  if (!pkt || !buf) return 2;
  for (long i = 0; i < size; i++) pkt[sizeof(struct icmphdr) + i] = (unsigned char)i;

  printf("PING %s (%s): %ld data bytes\n", host, ip, size);
  fflush(stdout);
  unsigned long ntx = 0, nrx = 0, ndup = 0;
  double tmin = INFINITY, tmax = 0, tsum = 0;
  double start = now(), next_send = start, last_send = start;
  for (;;) {
    if (stop) break;
    double t = now();
    if (deadline > 0 && t - start >= deadline) break;
    if ((count == 0 || (long)ntx < count) && t >= next_send) {
      struct icmphdr *h = (struct icmphdr *)pkt;
      h->type = ICMP_ECHO;
      h->code = 0;
      h->checksum = 0; /* the kernel fills id and checksum of datagram ICMP sockets */
      h->un.echo.sequence = htons((unsigned short)ntx);
      sent[ntx & 0xffff] = t;
      seen[ntx & 0xffff] = 0;
      if (sendto(fd, pkt, pktlen, 0, (struct sockaddr *)&dst, sizeof dst) < 0) fprintf(stderr, "ping: sendto: %s\n", strerror(errno));
      ntx++;
      next_send += interval;
      last_send = t;
    }
    if (count && (long)ntx >= count) {
      if ((long)nrx >= count) break;
      if (t - last_send >= waitsec) break;
    }
    double until = INFINITY;
    if (count == 0 || (long)ntx < count) until = next_send;
    else until = last_send + waitsec;
    if (deadline > 0 && start + deadline < until) until = start + deadline;
    int ms = (int)ceil((until - t) * 1000);
    if (ms < 0) ms = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0) continue;

    char cbuf[256];
    struct sockaddr_in from;
    struct iovec iov = {.iov_base = buf, .iov_len = 65536};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1,
                       .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    double rt = now();
    if (n < (ssize_t)sizeof(struct icmphdr)) continue; /* ICMP errors surface as recv errors: keep waiting */
    struct icmphdr *r = (struct icmphdr *)buf;
    if (r->type != ICMP_ECHOREPLY) continue;
    unsigned seq = ntohs(r->un.echo.sequence);
    if (seq >= ntx && ntx <= 0xffff) continue;
    int rttl = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
      if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TTL) memcpy(&rttl, CMSG_DATA(cm), sizeof rttl);
    double ms_rtt = (rt - sent[seq]) * 1000;
    int dup = seen[seq];
    if (dup) ndup++;
    else {
      seen[seq] = 1;
      nrx++;
      tsum += ms_rtt;
      if (ms_rtt < tmin) tmin = ms_rtt;
      if (ms_rtt > tmax) tmax = ms_rtt;
    }
    if (!quiet) {
      printf("%zd bytes from %s: seq=%u ttl=%d time=%.3f ms%s\n", n, inet_ntoa(from.sin_addr), seq, rttl, ms_rtt, dup ? " (DUP!)" : "");
      fflush(stdout);
    }
  }
  printf("\n--- %s ping statistics ---\n%lu packets transmitted, %lu packets received, ", host, ntx, nrx);
  if (ndup) printf("%lu duplicates, ", ndup);
  printf("%lu%% packet loss\n", ntx ? (ntx - nrx) * 100 / ntx : 0);
  if (nrx) printf("round-trip min/avg/max = %.3f/%.3f/%.3f ms\n", tmin, tsum / (double)nrx, tmax);
  return nrx && (deadline <= 0 || count == 0 || (long)nrx >= count) ? 0 : 1;
}
