/* dbc-udp-echo PORT [IDLE_SECONDS]: a UDP echo server for tests of forwarded UDP ports (busybox has no UDP
 * listener). Every datagram goes back to its sender, prefixed with "echo:"; exits after IDLE_SECONDS (default 120)
 * without traffic. Runs as any user on ports >= 1024. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dbc-udp-echo PORT [IDLE_SECONDS]\n");
    return 2;
  }
  int port = atoi(argv[1]);
  int idle = argc > 2 ? atoi(argv[2]) : 120;
  if (port < 1 || port > 65535 || idle < 1) return 2;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
  struct timeval tv = { idle, 0 };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[2048];
  memcpy(buf, "echo:", 5);
  for (;;) {
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&from, &len);
    if (n < 0) return 0; /* idle timeout */
    sendto(fd, buf, (size_t)n + 5, 0, (struct sockaddr *)&from, len);
  }
}
