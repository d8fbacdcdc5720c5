/*
 * Unit tests for RFC 5322 address parsing (mail/address.c).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"

static void ok(const char *in, const char *name, const char *addr)
{
	struct mail_address a;
	char err[256];
	cr_assert_eq(address_parse(in, &a, err, sizeof(err)), 0, "%s: %s", in, err);
	if (name)
		cr_assert_str_eq(a.name, name, "%s", in);
	else
		cr_assert_null(a.name, "%s", in);
	cr_assert_str_eq(a.addr, addr, "%s", in);
	free(a.name);
	free(a.addr);
}

static void bad(const char *in, const char *why)
{
	struct mail_address a;
	char err[256] = "";
	cr_assert_lt(address_parse(in, &a, err, sizeof(err)), 0, "accepted: %s", in);
	cr_assert(strstr(err, why) != NULL, "%s: expected '%s' in '%s'", in, why, err);
	cr_assert_null(a.addr);
}

Test(address, forms)
{
	ok("a@example.com", NULL, "a@example.com");
	ok("  a@example.com ", NULL, "a@example.com");
	ok("<a@example.com>", NULL, "a@example.com");
	ok("Jane Doe <jane.doe@example.com>", "Jane Doe", "jane.doe@example.com");
	ok("John Q. Public <jqp@example.com>", "John Q. Public", "jqp@example.com");
	ok("\"Doe, Jane\" <jane@example.com>", "Doe, Jane", "jane@example.com");
	ok("\"A \\\"quoted\\\" <name>\" <a@example.com>", "A \"quoted\" <name>", "a@example.com");
	ok("Zoë Ünicode <z@example.com>", "Zoë Ünicode", "z@example.com");
	ok("\"john..doe\"@example.com", NULL, "\"john..doe\"@example.com");
	ok("\"a@b\"@example.com", NULL, "\"a@b\"@example.com");
	ok("x+tag!#$%&'*/=?^_`{|}~-@sub.Example.COM", NULL, "x+tag!#$%&'*/=?^_`{|}~-@sub.Example.COM");
	ok("a@xn--bcher-kva.example", NULL, "a@xn--bcher-kva.example");
}

Test(address, refusals)
{
	bad("", "empty");
	bad("plain", "missing '@'");
	bad("@example.com", "empty local part");
	bad("a@", "missing domain");
	bad(".a@example.com", "start or end with a dot");
	bad("a.@example.com", "start or end with a dot");
	bad("a..b@example.com", "two dots");
	bad("a b@example.com", "not allowed in local part");
	bad("a(b)@example.com", "not allowed in local part");
	bad("ü@example.com", "SMTPUTF8");
	bad("a@bücher.example", "ASCII (xn--) form");
	bad("a@example", "fully qualified");
	bad("a@-x.example", "start or end with '-'");
	bad("a@x-.example", "start or end with '-'");
	bad("a@x..example", "empty label");
	bad("a@x_y.example", "not allowed in domain");
	bad("a@example.com.", "end with a dot");
	bad("a@[192.0.2.1]", "address literals");
	bad("a@example.com\r\nBcc: x@example.com", "CR or LF");
	bad("Name\n <a@example.com>", "CR or LF");
	bad("Bad, Name <a@example.com>", "must be quoted");
	bad("Name <a@example.com> trailing", "expected 'Name <local@domain>'");
	bad("Name <a@example.com", "expected 'Name <local@domain>'");
	bad("\"unterminated <a@example.com>", "unterminated");
	bad("\"a\\\x01\"@example.com", "bad escape");
}

Test(address, lengths)
{
	char local[80], addr[400];
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(addr, sizeof(addr), "%s@example.com", local);
	ok(addr, NULL, addr);
	memset(local, 'a', 65);
	local[65] = '\0';
	snprintf(addr, sizeof(addr), "%s@example.com", local);
	bad(addr, "local part longer than 64");
	char label[70];
	memset(label, 'b', 63);
	label[63] = '\0';
	snprintf(addr, sizeof(addr), "a@%s.example", label);
	ok(addr, NULL, addr);
	memset(label, 'b', 64);
	label[64] = '\0';
	snprintf(addr, sizeof(addr), "a@%s.example", label);
	bad(addr, "label longer than 63");
	/* 4 labels of 63 + 3 dots + ".ab" = 258 > 255 */
	char dom[300];
	char l63[64];
	memset(l63, 'c', 63);
	l63[63] = '\0';
	snprintf(dom, sizeof(dom), "%s.%s.%s.%s.ab", l63, l63, l63, l63);
	snprintf(addr, sizeof(addr), "a@%s", dom);
	bad(addr, "domain longer than 255");
}

Test(address, domain_lower)
{
	char d[256];
	address_domain_lower("Mixed.Case@Sub.EXAMPLE.com", d, sizeof(d));
	cr_assert_str_eq(d, "sub.example.com");
	address_domain_lower("\"a@b\"@X.example", d, sizeof(d));
	cr_assert_str_eq(d, "x.example");
}
