#!/usr/bin/env python3
"""check_report.py - fail a test run that did not run every test it defines.

Criterion leaves a skipped test out of its summary and exits 0, so a test
that skips (cr_skip_test, .disabled) or is compiled out disappears without
a trace.  tests/run.sh calls this after each build's run:

    check_report.py --list LIST --report REPORT.json --sources DIR [--suites WORD...] [-- CRITERION_OPTS...]
    check_report.py --sources DIR --criterion-filter WORD...

LIST is the output of "mailferry-tests --list" (the tests compiled in),
REPORT.json Criterion's JSON report of the run (--json=FILE), DIR the tests
folder whose tests/*/test_*.c define Test(suite, name).  It fails (exit 1)
when:
  - a test is defined in the sources but not compiled in, or the reverse;
  - any test the run should have run was reported SKIPPED or is missing
    from the report (with --filter: the tests the pattern matches; with
    --suites: every test of those suites);
  - the number of tests that ran differs from the number expected;
  - a suite asked for with --suites has no test compiled in.
A WORD of --suites is a suite name, or a test source file (then: every
suite that file defines).  --criterion-filter prints the --filter pattern
that runs exactly those suites (tests/run.sh's TEST_SUITES).
It prints one summary line with the counts.  Python stdlib only.
"""
import argparse
import fnmatch
import glob
import json
import os
import re
import sys

# Test(suite, name, ...) and ParameterizedTest(type *param, suite, name, ...).
TEST_RE = re.compile(r'^\s*(?:Test\(|ParameterizedTest\([^,]*,)\s*(\w+)\s*,\s*(\w+)', re.M)


def strip_comments(text):
    """C source without its comments (which may mention Test(...) in
    prose); string and character literals are kept as they are."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in '"\'':
            j = i + 1
            while j < n and text[j] != c and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append('\n' * text.count('\n', i, j))
            i = j
        elif text.startswith('//', i):
            j = text.find('\n', i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def defined_in_file(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        text = f.read()
    return {suite + '/' + name for suite, name in TEST_RE.findall(strip_comments(text))}


def defined_in_sources(srcdir):
    names = set()
    for path in sorted(glob.glob(os.path.join(srcdir, '*', 'test_*.c'))):
        names |= defined_in_file(path)
    return names


def suites_of(words):
    """Suite names for --suites words: a name, or a source file's suites."""
    out = []
    for w in words:
        if w.endswith('.c'):
            if not os.path.exists(w):
                raise SystemExit('check_report.py: no such test source: %s' % w)
            found = sorted({n.split('/')[0] for n in defined_in_file(w)})
            if not found:
                raise SystemExit('check_report.py: %s defines no test' % w)
            out += found
        elif re.fullmatch(r'\w+', w):
            out.append(w)
        else:
            raise SystemExit('check_report.py: not a suite name or a test source: %r' % w)
    return sorted(set(out))


def extglob_regex(pat):
    """Criterion's --filter pattern (a glob with ?(..), *(..), +(..) and
    @(..) groups) as a compiled regex, or None for a form this does not
    translate (!(..), an unclosed group or class)."""
    out, groups, i = [], [], 0
    while i < len(pat):
        c = pat[i]
        if c in '?*+@!' and pat[i + 1:i + 2] == '(':
            if c == '!':
                return None
            groups.append({'?': '?', '*': '*', '+': '+', '@': ''}[c])
            out.append('(?:')
            i += 2
            continue
        if c == '|' and groups:
            out.append('|')
        elif c == ')' and groups:
            out.append(')' + groups.pop())
        elif c == '*':
            out.append('.*')
        elif c == '?':
            out.append('.')
        elif c == '[':
            j = pat.find(']', i + 2)
            if j < 0:
                return None
            body = pat[i + 1:j]
            if body.startswith('!'):
                body = '^' + body[1:]
            out.append('[' + body.replace('\\', '\\\\') + ']')
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    if groups:
        return None
    return re.compile(''.join(out) + r'\Z', re.S)


def listed(path):
    """Tests in "--list" output: "suite: N tests" then tree lines."""
    names, disabled, suite = set(), set(), None
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            line = line.rstrip('\n')
            m = re.match(r'^(\w+): \d+ tests?$', line)
            if m:
                suite = m.group(1)
                continue
            m = re.match(r'^\W+\s(\w+)( \(skipped\))?$', line)
            if m and suite:
                names.add(suite + '/' + m.group(1))
                if m.group(2):
                    disabled.add(suite + '/' + m.group(1))
    return names, disabled


def reported(path):
    """{suite/name: (status, first message)} from Criterion's JSON report."""
    with open(path, 'rb') as f:
        raw = f.read().decode('utf-8', errors='replace')
    out = {}
    try:
        doc = json.loads(raw, strict=False)
        for s in doc.get('test_suites', []):
            for t in s.get('tests', []):
                msgs = t.get('messages') or ['']
                out[s['name'] + '/' + t['name']] = (t.get('status', '?'), msgs[0])
        return out
    except ValueError:
        pass
    # A failure message Criterion did not escape: read the names and
    # statuses, which it writes on their own lines.
    suite = None
    name = None
    for line in raw.splitlines():
        m = re.match(r'^\s*"name": "(\w+)",$', line)
        if m:
            if line.startswith('      "name"') and not line.startswith('          '):
                suite = m.group(1)
            else:
                name = m.group(1)
            continue
        m = re.match(r'^\s*"status": "(\w+)"', line)
        if m and suite and name:
            out[suite + '/' + name] = (m.group(1), None)  # message unknown
    return out


def filter_of(opts):
    pat = None
    for i, o in enumerate(opts):
        if o == '--filter' and i + 1 < len(opts):
            pat = opts[i + 1]
        elif o.startswith('--filter='):
            pat = o[len('--filter='):]
    return pat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--list')
    ap.add_argument('--report')
    ap.add_argument('--sources', required=True)
    ap.add_argument('--label', default='')
    ap.add_argument('--suites', nargs='+', metavar='WORD')
    ap.add_argument('--criterion-filter', nargs='+', metavar='WORD')
    ap.add_argument('opts', nargs='*')
    a = ap.parse_args()

    if a.criterion_filter:
        # Every suite whose name is one of these, and nothing else.
        print('@(%s)/*' % '|'.join(suites_of(a.criterion_filter)))
        return 0
    if not a.list or not a.report:
        ap.error('--list and --report are needed to check a run')

    problems = []
    src = defined_in_sources(a.sources)
    lst, disabled = listed(a.list)
    for n in sorted(src - lst):
        problems.append('%s: defined in the sources but not compiled in' % n)
    for n in sorted(lst - src):
        problems.append('%s: compiled in but not found in %s/*/test_*.c' % (n, a.sources))
    for n in sorted(disabled):
        problems.append('%s: disabled' % n)

    if not os.path.exists(a.report) or os.path.getsize(a.report) == 0:
        problems.append('no report at %s: the test runner did not finish' % a.report)
        rep = {}
    else:
        rep = reported(a.report)

    pat = filter_of(a.opts)
    if a.suites and pat is not None:
        problems.append('--suites and a --filter in the Criterion options: give one of them')
    if a.suites:
        suites = suites_of(a.suites)
        expected = {n for n in lst if n.split('/')[0] in suites}
        for s in suites:
            if not any(n.split('/')[0] == s for n in lst):
                problems.append('suite %s: asked for, but no test of it is compiled in' % s)
        pat = ' '.join(suites)
    elif pat is None:
        expected = lst
    else:
        rx = extglob_regex(pat)
        if rx is None:
            # A form not translated (!(...)): expect what ran, but never nothing.
            expected = {n for n, (st, _) in rep.items() if st != 'SKIPPED'}
            if not expected:
                problems.append('filter %s: no test ran' % pat)
        else:
            expected = {n for n in lst if rx.match(n)}

    ran = {n for n, (st, _) in rep.items() if st != 'SKIPPED'}
    for n in sorted(expected):
        if n not in rep:
            problems.append('%s: missing from the report' % n)
        elif rep[n][0] == 'SKIPPED':
            problems.append('%s: SKIPPED: %s' % (n, rep[n][1] or '?'))
    for n, (st, msg) in sorted(rep.items()):
        # A test a filter left out is reported skipped with Criterion's own
        # message (unknown when the report had to be read line by line).
        if st == 'SKIPPED' and n not in expected and msg not in ('The test was skipped.', None):
            problems.append('%s: SKIPPED: %s' % (n, msg))
    for n in sorted(ran - expected):
        problems.append('%s: ran but was not expected to' % n)

    skipped = sum(1 for n in expected if n in rep and rep[n][0] == 'SKIPPED')
    print('==> suite check%s: %d defined in the sources, %d compiled in, %d expected%s, %d ran, %d skipped'
          % (' ' + a.label if a.label else '', len(src), len(lst), len(expected),
             ' (%s %s)' % ('suites' if a.suites else 'filter', pat) if pat else '', len(ran), skipped))
    if len(ran) != len(expected) and not problems:
        problems.append('%d tests ran, %d expected' % (len(ran), len(expected)))
    for p in problems:
        print('suite check: ' + p, file=sys.stderr)
    if problems:
        print('suite check: FAILED (%d problem(s))' % len(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
