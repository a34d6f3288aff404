/* wire: userspace link emulator for bench/netval/linux (the kernel here has no netem).
 *
 *   wire CONFIG        (run by linux_run.py; commands on stdin: "s" = print stats and reset, "q" = quit)
 *
 * CONFIG, one line per link:
 *   link <netns_child> <dev_child> <netns_parent> <dev_parent> <up_bps> <down_bps> <delay_ns> <q_up> <q_down>
 *
 * For every link it creates two TUN devices (IFF_TUN | IFF_NO_PI): dev_child inside the child's
 * network namespace and dev_parent inside the parent's. What the child's stack routes out of
 * dev_child is the "up" direction: read here, passed through a drop-tail queue and a serialiser at
 * up_bps, held for the one-way delay, then written into dev_parent (the parent's stack receives it).
 * "down" is the mirror image. The model is ns-3's PointToPointNetDevice + FifoQueueDisc(Q) with a
 * 1-packet device queue: a packet that arrives while Q + 1 packets are waiting to start
 * serialisation is dropped; otherwise it starts at max(arrival, end of the previous packet), takes
 * (ip_len + 2) * 8 / rate seconds (the +2 is ns-3's PPP header, so both count 1502 B per full
 * segment), and is delivered delay_ns after its serialisation ends. Constant delay: FIFO, no
 * reordering.
 *
 * Exits when stdin closes; the TUN devices disappear with it (they are not persistent).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define SLOT 2048
#define MAXDIR 256

typedef struct {
    int in_fd, out_fd;
    double ns_per_byte;
    int64_t delay_ns;
    uint64_t qlimit;   /* packets allowed to wait (Q + 1) */
    uint64_t cap;      /* ring slots */
    unsigned char *buf;
    uint32_t *len;
    int64_t *tx_start, *deliver_at;
    uint64_t head, wait_idx, tail; /* head: next to deliver; wait_idx: first not yet started; tail: next free */
    int64_t last_tx_end;
    /* stats */
    uint64_t pkts_in, bytes_in, drops, ringfull, pkts_out, write_err, max_waiting;
    int64_t late_max, late_sum;
    uint64_t late_100us, late_1ms;
    char name[96];
} dir_t;

static dir_t dirs[MAXDIR];
static int ndirs;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int open_tun_in(const char *ns, const char *dev, int home) {
    char path[512];
    snprintf(path, sizeof path, "/var/run/netns/%s", ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) { perror(path); exit(2); }
    close(nsfd);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) { perror("/dev/net/tun"); exit(2); }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) { perror("TUNSETIFF"); exit(2); }
    if (setns(home, CLONE_NEWNET) < 0) { perror("setns home"); exit(2); }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void init_dir(dir_t *d, int in_fd, int out_fd, double bps, int64_t delay_ns, uint64_t q, const char *name) {
    memset(d, 0, sizeof *d);
    d->in_fd = in_fd;
    d->out_fd = out_fd;
    d->ns_per_byte = 8e9 / bps;
    d->delay_ns = delay_ns;
    d->qlimit = q + 1;
    /* in flight on the wire: delay / time of a 1502 B packet, plus the queue, plus slack for
       packets whose delivery is late when the wire falls behind (a full ring drops: "ringfull") */
    uint64_t flight = (uint64_t)((double)delay_ns / (1502.0 * d->ns_per_byte)) + 2;
    d->cap = d->qlimit + 2 + 2 * flight + 4096;
    d->buf = malloc(d->cap * SLOT);
    d->len = calloc(d->cap, sizeof(uint32_t));
    d->tx_start = calloc(d->cap, sizeof(int64_t));
    d->deliver_at = calloc(d->cap, sizeof(int64_t));
    if (!d->buf || !d->len || !d->tx_start || !d->deliver_at) { fprintf(stderr, "out of memory\n"); exit(2); }
    snprintf(d->name, sizeof d->name, "%s", name);
}

static void print_stats(void) {
    printf("{\"dirs\": [");
    for (int i = 0; i < ndirs; i++) {
        dir_t *d = &dirs[i];
        printf("%s{\"name\": \"%s\", \"pkts_in\": %llu, \"bytes_in\": %llu, \"drops\": %llu, \"ringfull\": %llu, "
               "\"pkts_out\": %llu, \"write_err\": %llu, \"max_waiting\": %llu, \"late_max_us\": %.1f, "
               "\"late_mean_us\": %.2f, \"late_over_100us\": %llu, \"late_over_1ms\": %llu}",
               i ? ", " : "", d->name, (unsigned long long)d->pkts_in, (unsigned long long)d->bytes_in,
               (unsigned long long)d->drops, (unsigned long long)d->ringfull, (unsigned long long)d->pkts_out,
               (unsigned long long)d->write_err, (unsigned long long)d->max_waiting, d->late_max / 1e3,
               d->pkts_out ? (double)d->late_sum / d->pkts_out / 1e3 : 0.0, (unsigned long long)d->late_100us,
               (unsigned long long)d->late_1ms);
        d->pkts_in = d->bytes_in = d->drops = d->ringfull = d->pkts_out = d->write_err = d->max_waiting = 0;
        d->late_max = d->late_sum = 0;
        d->late_100us = d->late_1ms = 0;
    }
    printf("]}\n");
    fflush(stdout);
}

/* read every packet waiting on d->in_fd (bounded per call) */
static void drain_in(dir_t *d) {
    for (int k = 0; k < 256; k++) {
        uint64_t slot = d->tail % d->cap;
        if (d->tail - d->head >= d->cap) { /* ring full: read and discard */
            unsigned char junk[SLOT];
            ssize_t n = read(d->in_fd, junk, sizeof junk);
            if (n <= 0) return;
            d->pkts_in++; d->ringfull++;
            continue;
        }
        ssize_t n = read(d->in_fd, d->buf + slot * SLOT, SLOT);
        if (n <= 0) return; /* EAGAIN */
        int64_t t = now_ns();
        d->pkts_in++;
        d->bytes_in += n;
        while (d->wait_idx < d->tail && d->tx_start[d->wait_idx % d->cap] <= t) d->wait_idx++;
        uint64_t waiting = d->tail - d->wait_idx;
        if (waiting >= d->qlimit) { d->drops++; continue; }
        int64_t start = t > d->last_tx_end ? t : d->last_tx_end;
        int64_t end = start + (int64_t)((n + 2) * d->ns_per_byte + 0.5);
        d->last_tx_end = end;
        d->len[slot] = (uint32_t)n;
        d->tx_start[slot] = start;
        d->deliver_at[slot] = end + d->delay_ns;
        d->tail++;
        if (waiting + 1 > d->max_waiting) d->max_waiting = waiting + 1;
    }
}

static void deliver_due(dir_t *d, int64_t t) {
    while (d->head < d->tail) {
        uint64_t slot = d->head % d->cap;
        int64_t due = d->deliver_at[slot];
        if (due > t) return;
        if (write(d->out_fd, d->buf + slot * SLOT, d->len[slot]) < 0) d->write_err++;
        int64_t late = now_ns() - due;
        d->pkts_out++;
        d->late_sum += late;
        if (late > d->late_max) d->late_max = late;
        if (late > 100000) d->late_100us++;
        if (late > 1000000) d->late_1ms++;
        d->head++;
        if (d->wait_idx < d->head) d->wait_idx = d->head;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: wire CONFIG\n"); return 2; }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char nsc[256], devc[64], nsp[256], devp[64];
        double up, down;
        long long delay;
        unsigned long long qu, qd;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(line, "link %255s %63s %255s %63s %lf %lf %lld %llu %llu", nsc, devc, nsp, devp, &up, &down, &delay,
                   &qu, &qd) != 9) { fprintf(stderr, "bad line: %s", line); return 2; }
        if (ndirs + 2 > MAXDIR) { fprintf(stderr, "too many links\n"); return 2; }
        int fc = open_tun_in(nsc, devc, home), fp = open_tun_in(nsp, devp, home);
        char name[96];
        snprintf(name, sizeof name, "%s/%s>%s", nsc, devc, devp);
        init_dir(&dirs[ndirs++], fc, fp, up, delay, qu, name);
        snprintf(name, sizeof name, "%s/%s>%s", nsp, devp, devc);
        init_dir(&dirs[ndirs++], fp, fc, down, delay, qd, name);
    }
    fclose(f);

    /* timing: real-time priority if allowed, no timer slack */
    const char *prio = "SCHED_FIFO 20";
    struct sched_param sp = {.sched_priority = 20};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) {
        prio = "SCHED_OTHER nice -10";
        setpriority(PRIO_PROCESS, 0, -10);
    }
    prctl(PR_SET_TIMERSLACK, 1UL);
    mlockall(MCL_CURRENT | MCL_FUTURE);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u32 = 0xffffffffu;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    for (int i = 0; i < ndirs; i++) {
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, dirs[i].in_fd, &ev);
    }
    printf("ready %d directions, %s\n", ndirs, prio);
    fflush(stdout);

    struct epoll_event evs[MAXDIR + 1];
    for (;;) {
        int64_t t = now_ns();
        int64_t next = INT64_MAX;
        for (int i = 0; i < ndirs; i++) {
            deliver_due(&dirs[i], t);
            if (dirs[i].head < dirs[i].tail) {
                int64_t due = dirs[i].deliver_at[dirs[i].head % dirs[i].cap];
                if (due < next) next = due;
            }
        }
        struct timespec to, *top = NULL;
        if (next != INT64_MAX) {
            int64_t wait = next - now_ns();
            if (wait < 0) wait = 0;
            to.tv_sec = wait / 1000000000LL;
            to.tv_nsec = wait % 1000000000LL;
            top = &to;
        }
        int n = epoll_pwait2(ep, evs, MAXDIR + 1, top, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_pwait2");
            return 1;
        }
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            if (i == 0xffffffffu) {
                char cmd[64];
                ssize_t r = read(0, cmd, sizeof cmd);
                if (r <= 0) return 0;
                for (ssize_t j = 0; j < r; j++) {
                    if (cmd[j] == 's') print_stats();
                    if (cmd[j] == 'q') return 0;
                }
            } else {
                drain_in(&dirs[i]);
            }
        }
    }
}
