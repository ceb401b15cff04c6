/**
 * SSRF spellings from the public cheat sheets (PayloadsAllTheThings "Server Side Request Forgery",
 * OWASP SSRF prevention, HackTricks URL-format bypasses), for our test DNS where a name is involved.
 * Every one must be refused.
 */
export const DNS_ANSWERS: Record<string, string[]> = {
  'localhost': ['127.0.0.1', '::1'],
  'internal.test': ['10.0.0.5'],
  'v6internal.test': ['fd00::1'],
  'mixed.test': ['93.184.215.14', '127.0.0.1'],
  'metadata.google.internal': ['169.254.169.254'],
  'localtest.me': ['127.0.0.1'],
  '127.0.0.1.nip.io': ['127.0.0.1'],
  '169.254.169.254.nip.io': ['169.254.169.254'],
  'spoofed.burpcollaborator.net': ['127.0.0.1'],
  'cgnat.test': ['100.64.1.1'],
  'mapped.test': ['::ffff:10.0.0.1'],
  'public.test': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
};

export const MUST_REFUSE: string[] = [
  // loopback, every spelling WHATWG accepts
  'http://127.0.0.1/', 'http://127.1/', 'http://127.0.1/', 'http://2130706433/', 'http://0x7f000001/', 'http://0x7f.0.0.1/',
  'http://0177.0.0.1/', 'http://017700000001/', 'http://0177.1/', 'http://127.000.000.001/', 'http://127.0.0.1:22/', 'http://127.0.0.1:6379/',
  'http://127.255.255.254/', 'http://[::1]/', 'http://[0:0:0:0:0:0:0:1]/', 'http://[::ffff:127.0.0.1]/', 'http://[::ffff:7f00:1]/',
  'http://[0:0:0:0:0:ffff:127.0.0.1]/', 'http://localhost/', 'http://localhost./', 'http://LOCALHOST/', 'http://LoCaLhOsT:8080/',
  'http://%6c%6f%63%61%6c%68%6f%73%74/', 'http://①②⑦.⓪.⓪.①/', 'http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/', 'http://%31%32%37.0.0.1/', 'http://127。0。0。1/',
  'http://localtest.me/', 'http://127.0.0.1.nip.io/', 'http://spoofed.burpcollaborator.net/', 'https://127.0.0.1:443/', 'http://127.0.0.1./',
  // unspecified
  'http://0.0.0.0/', 'http://0/', 'http://0.0.0.0:8080/', 'http://[::]/', 'http://[0:0:0:0:0:0:0:0]/', 'http://0x0/',
  // private
  'http://10.0.0.1/', 'http://10.255.255.255/', 'http://012.0.0.1/', 'http://0xa.0.0.1/', 'http://167772161/', 'http://172.16.0.1/',
  'http://172.31.255.255/', 'http://0xac100001/', 'http://192.168.0.1/', 'http://192.168.1.1/', 'http://3232235777/', 'http://0xc0a80101/',
  'http://0300.0250.0.1/', 'http://[fc00::1]/', 'http://[fd00::1]/', 'http://[fd12:3456:789a::1]/', 'http://internal.test/', 'http://internal.test./',
  'http://INTERNAL.TEST/', 'http://v6internal.test/', 'http://mixed.test/', 'http://mapped.test/',
  // link-local and cloud metadata
  'http://169.254.169.254/latest/meta-data/', 'http://2852039166/', 'http://0xa9fea9fe/', 'http://0251.0376.0251.0376/', 'http://169.254.170.2/v2/credentials',
  'http://[fe80::1]/', 'http://[fe80::a9fe:a9fe]/', 'http://[::ffff:169.254.169.254]/', 'http://[::ffff:a9fe:a9fe]/', 'http://[fd00:ec2::254]/',
  'http://metadata.google.internal/computeMetadata/v1/', 'http://169.254.169.254.nip.io/', 'http://100.100.100.200/latest/meta-data/',
  // carrier-grade NAT
  'http://100.64.0.1/', 'http://100.127.255.254/', 'http://cgnat.test/',
  // multicast, broadcast, reserved
  'http://224.0.0.1/', 'http://239.255.255.250/', 'http://255.255.255.255/', 'http://240.0.0.1/', 'http://[ff02::1]/', 'http://[ff05::2]/',
  // documentation and benchmarking
  'http://192.0.2.1/', 'http://198.51.100.1/', 'http://203.0.113.1/', 'http://198.18.0.1/', 'http://198.19.255.255/', 'http://192.0.0.1/',
  'http://192.88.99.1/', 'http://[2001:db8::1]/', 'http://[2001:2::1]/', 'http://[3fff::1]/',
  // IPv6 forms that embed IPv4, and other non-global IPv6
  'http://[64:ff9b::7f00:1]/', 'http://[64:ff9b::a00:1]/', 'http://[64:ff9b::808:808]/', 'http://[64:ff9b:1::a00:1]/', 'http://[2002:7f00:1::]/',
  'http://[2002:a00:1::1]/', 'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/', 'http://[::127.0.0.1]/', 'http://[::7f00:1]/', 'http://[fec0::1]/',
  'http://[100::1]/', 'http://[2001:10::1]/', 'http://[4000::1]/',
  // schemes other than http(s)
  'file:///etc/passwd', 'file://localhost/etc/passwd', 'gopher://127.0.0.1:70/_x', 'dict://127.0.0.1:11211/stat', 'ftp://127.0.0.1/', 'ldap://127.0.0.1/',
  'sftp://127.0.0.1/', 'tftp://127.0.0.1/x', 'jar:http://127.0.0.1!/', 'data:text/plain,hi', 'javascript:alert(1)', 'ws://127.0.0.1/', 'netdoc:///etc/passwd',
  // credentials and confusion
  'http://user:pass@8.8.8.8/', 'http://evil.com@127.0.0.1/', 'http://127.0.0.1:80@evil.com/', 'http://127.0.0.1 &@8.8.8.8# @3.3.3.3/',
  'http:127.0.0.1/', 'http:/127.0.0.1/', 'http://127.0.0.1\\@8.8.8.8/', 'http://[::1]:80/', 'not a url', '',
];

export const MUST_ALLOW: string[] = ['http://8.8.8.8/', 'https://1.1.1.1:8443/x', 'http://[2606:4700:4700::1111]/', 'http://public.test/', 'http://[::ffff:8.8.8.8]/', 'http://PUBLIC.test./'];
