/*
 * Tests of util/rand.c: the per-thread pool hands out each byte once,
 * across refills, and a child of fork() never repeats its parent's next
 * bytes (the child discards the pool it inherited).
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/rand.h"

Test(rand, bytes_are_never_handed_out_twice)
{
	/* 3000 bytes span several 512-byte refills; no 16-byte window of one
	 * draw may equal the next draw (2^-128 by chance). */
	static unsigned char a[3000], b[3000];
	rand_id_bytes(a, sizeof(a));
	rand_id_bytes(b, sizeof(b));
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
	for (size_t i = 0; i + 16 <= sizeof(a); i += 16)
		cr_assert_neq(memcmp(a + i, b + i, 16), 0, "window %zu repeated", i);
	unsigned char zero[16] = { 0 }, x[16];
	rand_id_bytes(x, 1); /* leaves the pool mid-way */
	rand_id_bytes(x, sizeof(x));
	cr_assert_neq(memcmp(x, zero, sizeof(x)), 0);
}

Test(rand, a_forked_child_does_not_repeat_its_parent)
{
	unsigned char warm[8], mine[32], theirs[32];
	rand_id_bytes(warm, sizeof(warm)); /* the pool now holds unused bytes */
	int fd[2];
	cr_assert_eq(pipe(fd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		unsigned char c[32];
		rand_id_bytes(c, sizeof(c));
		_exit(write(fd[1], c, sizeof(c)) == (ssize_t)sizeof(c) ? 0 : 1);
	}
	rand_id_bytes(mine, sizeof(mine));
	cr_assert_eq(read(fd[0], theirs, sizeof(theirs)), (ssize_t)sizeof(theirs));
	int st = 0;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_neq(memcmp(mine, theirs, sizeof(mine)), 0, "the child handed out the parent's bytes");
	close(fd[0]);
	close(fd[1]);
}
