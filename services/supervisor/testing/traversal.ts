/** Path spellings that try to leave the root; every one must be refused before touching a file. */
export const TRAVERSAL: string[] = [
  '..', '../', '../secret.txt', '../../etc/passwd', 'a/../../secret.txt', 'a/..', './a', '.', './', 'a/./b', 'a//b', '/etc/passwd', '/',
  '//etc/passwd', 'a/', '/a', '..\\secret.txt', 'a\\..\\..\\secret.txt', '\\etc\\passwd', 'C:\\Windows', 'a\u0000b', '\u0000', 'a/\u0000/b',
  '../other/data', 'x/../../other/data', '..//secret.txt', 'a/b/../../..', '../../../../../../../../../../etc/shadow', 'a\n../secret', 'a\r', '\t',
  'a/b/c/../../../../secret.txt', '../me/../secret.txt', '../x', 'ok/../..', '/..', '../' + 'a/'.repeat(5), 'a/'.repeat(40) + 'b', 'x'.repeat(300),
  'a/' + 'y'.repeat(256), '/proc/self/environ', '/proc/self/mem', '../../proc/self/root/etc/passwd',
  '', '\u007f', 'a\u001bb',
];

