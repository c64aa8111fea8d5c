import test from 'ava';
import { printable, printableLines } from '@slicelab/protocol';

test('escape sequences and control characters from elsewhere are stripped; the text stays', (t) => {
  t.is(printable('\x1b[31mred\x1b[0m'), 'red', 'colours (CSI)');
  t.is(printable('a\x1b[2J\x1b[Hb'), 'ab', 'clear screen and cursor home');
  t.is(printable('\x1b]0;owned\x07title'), 'title', 'window title (OSC with BEL)');
  t.is(printable('\x1b]8;;http://x\x1b\\link'), 'link', 'hyperlink (OSC with ST)');
  t.is(printable('bell\x07 back\x08space nul\x00 del\x7f c1\x9b'), 'bell backspace nul del c1');
  t.is(printable('line one\nslicelab: forged line\r\n'), 'line one slicelab: forged line ', 'one line stays one line');
  t.is(printable('abc\u202edcba'), 'abcdcba', 'a bidirectional override cannot reverse what follows');
  t.is(printable('naïve ✓ 10 µs\ttab'), 'naïve ✓ 10 µs tab', 'ordinary text, accents and symbols pass');
});

test('tables keep their lines; each line is made printable', (t) => {
  t.is(printableLines('┌─┐\n│\x1b[1mx\x1b[0m│\n└─┘'), '┌─┐\n│x│\n└─┘');
});
