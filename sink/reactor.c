/*
 * reactor.c - the primitives under the sink's loop and its sessions (see
 * internal.h): the clock, the random rolls for faults, the min-heap of
 * session timers and each session's epoll interest.  loop.c (the loop)
 * and session.c (one SMTP session) both use them; neither calls the
 * other's way back, so the loop sits above the sessions.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "sink/internal.h"
#include "util/xmalloc.h"

long long sink_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: faults need a fair coin, not an unpredictable one. */
double sink_random(struct sink *sk)
{
	uint64_t x = sk->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sk->rng = x;
	return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* ---- the timer heap, ordered by at_ms ---- */

static void heap_place(struct sink *sk, size_t i, struct sink_session *s)
{
	sk->heap[i] = s;
	s->heap_idx = i;
}

static void heap_up(struct sink *sk, size_t i)
{
	struct sink_session *s = sk->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (sk->heap[parent]->at_ms <= s->at_ms)
			break;
		heap_place(sk, i, sk->heap[parent]);
		i = parent;
	}
	heap_place(sk, i, s);
}

static void heap_down(struct sink *sk, size_t i)
{
	struct sink_session *s = sk->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		long long best = s->at_ms;
		if (l < sk->heap_n && sk->heap[l]->at_ms < best)
			m = l, best = sk->heap[l]->at_ms;
		if (l + 1 < sk->heap_n && sk->heap[l + 1]->at_ms < best)
			m = l + 1;
		if (m == i)
			break;
		heap_place(sk, i, sk->heap[m]);
		i = m;
	}
	heap_place(sk, i, s);
}

void sink_timer_set(struct sink *sk, struct sink_session *s)
{
	if (s->heap_idx == SIZE_MAX) {
		if (sk->heap_n == sk->heap_cap) {
			sk->heap_cap = sk->heap_cap ? sk->heap_cap * 2 : 1024;
			sk->heap = xrealloc(sk->heap, sk->heap_cap * sizeof(*sk->heap));
		}
		heap_place(sk, sk->heap_n++, s);
		heap_up(sk, s->heap_idx);
		return;
	}
	heap_up(sk, s->heap_idx);
	heap_down(sk, s->heap_idx);
}

void sink_timer_del(struct sink *sk, struct sink_session *s)
{
	size_t i = s->heap_idx;
	if (i == SIZE_MAX)
		return;
	s->heap_idx = SIZE_MAX;
	struct sink_session *last = sk->heap[--sk->heap_n];
	if (i == sk->heap_n)
		return;
	heap_place(sk, i, last);
	heap_up(sk, i);
	heap_down(sk, last->heap_idx);
}

int sink_session_events(struct sink *sk, struct sink_session *s)
{
	unsigned want = 0;
	if (s->state == SINK_S_HANDSHAKE) {
		want = s->flags & SINK_F_TLS_WANTS_OUT ? EPOLLOUT : EPOLLIN;
	} else {
		if (s->state != SINK_S_CLOSING && s->out_len - s->out_off < SINK_OUT_HIGH)
			want |= EPOLLIN;
		if (s->flags & (SINK_F_WANT_OUT | SINK_F_TLS_WANTS_OUT))
			want |= EPOLLOUT;
		if (s->flags & SINK_F_TLS_WANTS_IN)
			want |= EPOLLIN;
	}
	if (want == s->ev)
		return 0;
	struct epoll_event ev = { .events = want, .data.ptr = s };
	int op = s->ev == 0 && want != 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (s->ev != 0 && want == 0)
		op = EPOLL_CTL_DEL;
	s->ev = want;
	return epoll_ctl(sk->epfd, op, s->fd, &ev);
}
