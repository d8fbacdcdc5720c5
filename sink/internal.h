/*
 * internal.h - what loop.c and session.c share inside sink/: the loop's
 * state, one session, and the calls between them.  Not for other folders.
 *
 * Ownership: the loop owns the sessions.  A session is freed only by
 * sink_session_close(), called from the loop between events (a handler
 * that wants its session gone returns -1 and the loop closes it), so no
 * object is freed inside its own callback.
 */
#ifndef MF_SINK_INTERNAL_H
#define MF_SINK_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/tls.h"
#include "sink/sink.h"

/* RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF;
 * §4.5.3.1.6: a text line at most 1000. */
#define SINK_CMD_LINE_MAX 512
#define SINK_TEXT_LINE_MAX 1000
/* One read(2) into the loop's shared buffer. */
#define SINK_READ_CHUNK 65536
/* A session stops reading while this much output waits for its client. */
#define SINK_OUT_HIGH 65536
/* After its 421 for idleness, a session that does not take it is closed. */
#define SINK_CLOSE_GRACE_MS 10000

enum sink_ev_kind { SINK_EV_LISTENER = 1, SINK_EV_SESSION, SINK_EV_SIGNAL };

enum sink_sstate {
	SINK_S_GREETING,
	SINK_S_COMMAND,
	SINK_S_DATA,
	SINK_S_STARTTLS,   /* the 220 to STARTTLS goes out; input is dropped */
	SINK_S_HANDSHAKE,  /* the TLS handshake, step by step */
	SINK_S_CLOSING,
};

/* Session flags. */
#define SINK_F_HELO 0x001      /* EHLO/HELO accepted */
#define SINK_F_MAIL 0x002      /* inside a transaction */
#define SINK_F_SKIP 0x004      /* discarding the rest of an overlong line */
#define SINK_F_HEADERS 0x008   /* DATA: still in the header section */
#define SINK_F_MSGID_NEXT 0x010 /* DATA: Message-ID value on the next (folded) line */
#define SINK_F_TOO_LONG 0x020  /* DATA: a line was longer than allowed */
#define SINK_F_TOO_BIG 0x040   /* DATA: beyond max_message_size */
#define SINK_F_WANT_OUT 0x080  /* EPOLLOUT armed: output waits */
#define SINK_F_TLS_WANTS_OUT 0x100 /* a TLS read (or the handshake) waits until writable */
#define SINK_F_EOD 0x200       /* this read ended a message (data delay applies) */
#define SINK_F_TLS_WANTS_IN 0x400  /* a TLS write waits until readable */

struct sink_session {
	enum sink_ev_kind kind;  /* first: epoll's data.ptr points here */
	int fd;
	enum sink_sstate state;
	unsigned flags;
	unsigned nrcpts;
	unsigned nmsg;           /* messages accepted in this session */
	unsigned ev;             /* epoll events registered now */
	size_t heap_idx;         /* index in the timer heap, SIZE_MAX when absent */
	long long at_ms;         /* when the timer fires */
	long long due_ms;        /* when the waiting replies go out; 0: none wait */
	long long idle_ms;       /* idle deadline */
	long tarpit_ms;
	unsigned long long id;
	size_t data_bytes;
	uint64_t msgid;          /* hash of the Message-ID, 0 none yet */
	char *partial;           /* an unfinished line, or NULL */
	unsigned partial_len;
	char *out;               /* replies not yet written, or NULL */
	unsigned out_off, out_len, out_cap;
	struct tls_conn *tls;    /* from STARTTLS's handshake on, else NULL */
};

struct sink_listener {
	enum sink_ev_kind kind;
	int fd;
	int port;
};

struct sink {
	struct sink_params p;
	struct tls_ctx *tls;       /* STARTTLS offered when not NULL; one for all sessions */
	int epfd;
	struct sink_listener *ls;
	size_t nls;
	int paused;                /* listeners out of epoll (out of descriptors) */
	long long resume_ms;
	struct sink_session **heap;
	size_t heap_n, heap_cap;
	struct sink_count count;
	unsigned long long next_id;
	int hold_released;         /* data_hold reached: nothing is held any more */
	uint64_t rng;
	long long now_ms;
	char *rbuf;                /* shared read buffer */
	/* Every session, for sink_free(): a doubly linked list would cost two
	 * pointers per session; the heap already holds them all (each session
	 * always has a timer: its reply or its idle deadline). */
};

/* reactor.c: the primitives both loop.c and session.c use. */
long long sink_now_ms(void);
/* A number in [0,1). */
double sink_random(struct sink *sk);
/* (Re)places a session's timer at s->at_ms. */
void sink_timer_set(struct sink *sk, struct sink_session *s);
void sink_timer_del(struct sink *sk, struct sink_session *s);
/* The due time of a reply held by data_hold (loop.c releases it). */
#define SINK_HELD_MS (LLONG_MAX / 4)
/* After an accept: once data_hold sessions have been open at once, the held
 * replies are scheduled. */
void sink_hold_check(struct sink *sk);
/* Updates the session's epoll interest from its state and flags; 0 or -1. */
int sink_session_events(struct sink *sk, struct sink_session *s);

/* session.c.  Each returns 0, or -1 when the loop must close the session. */
int sink_session_open(struct sink *sk, int fd, struct sink_session **out);
int sink_session_readable(struct sink *sk, struct sink_session *s);
int sink_session_writable(struct sink *sk, struct sink_session *s);
int sink_session_timer(struct sink *sk, struct sink_session *s);
void sink_session_close(struct sink *sk, struct sink_session *s);

#endif
