/*
 * th_smtp.h - a raw SMTP client for tests that need to control the bytes
 * on the wire (pipelining, long lines, idle sessions), and a wrapper
 * around swaks.  Strings returned are owned by the caller (free()).
 */
#ifndef MF_TEST_TH_SMTP_H
#define MF_TEST_TH_SMTP_H

/* Connects to 127.0.0.1:port; the fd, or -1. */
int th_smtp_connect(int port);
/* Connects until it works or timeout_ms passes; 0 or -1. */
int th_smtp_wait_port(int port, int timeout_ms);
/* Sends all of s; 0 or -1. */
int th_smtp_send(int fd, const char *s);
/* Reads one complete (possibly multiline) reply; NULL on EOF/timeout. */
char *th_smtp_reply(int fd, int timeout_ms);
/* Reads n replies and returns them concatenated; NULL if one is missing. */
char *th_smtp_replies(int fd, int n, int timeout_ms);
/* True when the peer closed the connection within timeout_ms. */
int th_smtp_closed(int fd, int timeout_ms);
/* Runs swaks against 127.0.0.1:port with extra arguments (shell-quoted by
 * the caller); returns its exit status, output (both streams) in *out. */
int th_swaks(char **out, int port, const char *args);

#endif
