/**
 * SSRF spellings from the public cheat sheets (PayloadsAllTheThings "Server Side Request Forgery",
 * OWASP SSRF prevention, HackTricks URL-format bypasses), the IANA special-purpose address and
 * special-use name registries, and our test DNS where a name is involved. Every MUST_REFUSE URL must
 * be refused; every MUST_ALLOW one pinned to a global unicast address.
 */
export const DNS_ANSWERS: Record<string, string[]> = {
  // Special-use and private-use names, answered by a resolver that should never be asked: refused by name.
  'localhost': ['127.0.0.1', '::1'],
  'x.localhost': ['93.184.215.14'],
  'svc.internal': ['93.184.215.14'],
  'metadata.google.internal': ['169.254.169.254'],
  'printer.local': ['93.184.215.14'],
  'router.home.arpa': ['93.184.215.14'],
  'intranet': ['93.184.215.14'],
  'internal.test': ['10.0.0.5'],
  // Ordinary names whose answers are not global unicast: refused by address.
  'internal.example.com': ['10.0.0.5'],
  'v6internal.example.com': ['fd00::1'],
  'mixed.example.com': ['93.184.215.14', '127.0.0.1'],
  'localtest.me': ['127.0.0.1'],
  '127.0.0.1.nip.io': ['127.0.0.1'],
  '169.254.169.254.nip.io': ['169.254.169.254'],
  'spoofed.burpcollaborator.net': ['127.0.0.1'],
  'cgnat.example.com': ['100.64.1.1'],
  'mapped.example.com': ['::ffff:10.0.0.1'],
  'siit.example.com': ['::ffff:0:7f00:1'],
  'nat64.example.com': ['64:ff9b::7f00:1'],
  'anycast.example.com': ['192.0.0.9'],
  // Global unicast answers: allowed.
  'public.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'],
  'nat64-public.example.com': ['64:ff9b::808:808'],
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
  'http://0300.0250.0.1/', 'http://[fc00::1]/', 'http://[fd00::1]/', 'http://[fd12:3456:789a::1]/', 'http://internal.example.com/', 'http://internal.example.com./',
  'http://INTERNAL.EXAMPLE.COM/', 'http://v6internal.example.com/', 'http://mixed.example.com/', 'http://mapped.example.com/',
  // link-local and cloud metadata
  'http://169.254.169.254/latest/meta-data/', 'http://2852039166/', 'http://0xa9fea9fe/', 'http://0251.0376.0251.0376/', 'http://169.254.170.2/v2/credentials',
  'http://[fe80::1]/', 'http://[fe80::a9fe:a9fe]/', 'http://[::ffff:169.254.169.254]/', 'http://[::ffff:a9fe:a9fe]/', 'http://[fd00:ec2::254]/',
  'http://metadata.google.internal/computeMetadata/v1/', 'http://169.254.169.254.nip.io/', 'http://100.100.100.200/latest/meta-data/',
  // carrier-grade NAT
  'http://100.64.0.1/', 'http://100.127.255.254/', 'http://cgnat.example.com/',
  // multicast, broadcast, reserved
  'http://224.0.0.1/', 'http://239.255.255.250/', 'http://255.255.255.255/', 'http://240.0.0.1/', 'http://[ff02::1]/', 'http://[ff05::2]/',
  // documentation and benchmarking
  'http://192.0.2.1/', 'http://198.51.100.1/', 'http://203.0.113.1/', 'http://198.18.0.1/', 'http://198.19.255.255/', 'http://192.0.0.1/',
  'http://192.88.99.1/', 'http://[2001:db8::1]/', 'http://[2001:2::1]/', 'http://[3fff::1]/',
  // IPv6 forms that embed IPv4, and other non-global IPv6
  'http://[64:ff9b::7f00:1]/', 'http://[64:ff9b::a00:1]/', 'http://[64:ff9b::a9fe:a9fe]/', 'http://[64:ff9b::c000:2ff]/', 'http://[64:ff9b:1::a00:1]/',
  'http://[64:ff9b:1::808:808]/', 'http://[2002:7f00:1::]/', 'http://[2002:a00:1::1]/', 'http://[2002:c000:209::1]/', 'http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/',
  'http://[::127.0.0.1]/', 'http://[::7f00:1]/', 'http://[::808:808]/', 'http://[fec0::1]/', 'http://[100::1]/', 'http://[100:0:0:1::1]/', 'http://[2001:10::1]/',
  'http://[2001:20::1]/', 'http://[2001:30::1]/', 'http://[5f00::1]/', 'http://[4000::1]/', 'http://[fe80::1%25eth0]/', 'http://nat64.example.com/',
  // IPv4-translated (SIIT, ::ffff:0:0:0/96): outside 2000::/3, refused whatever it embeds
  'http://[::ffff:0:7f00:1]/', 'http://[::ffff:0:127.0.0.1]/', 'http://[0:0:0:0:ffff:0:7f00:1]/', 'http://[::ffff:0:a00:1]/', 'http://[::ffff:0:808:808]/',
  'http://siit.example.com/',
  // anycast service addresses and identifier prefixes the registry calls global
  'http://192.0.0.9/', 'http://192.0.0.10/', 'http://192.31.196.1/', 'http://192.52.193.1/', 'http://192.175.48.1/', 'http://[2001:1::1]/',
  'http://[2001:4:112::1]/', 'http://[2620:4f:8000::1]/', 'http://anycast.example.com/', 'http://192.0.0.170/', 'http://192.88.99.2/',
  // special-use and private-use names, refused by name in every spelling
  'http://x.localhost/', 'http://a.b.localhost./', 'http://svc.internal/', 'http://SVC.INTERNAL./', 'http://svc.internal../', 'http://svc%2Einternal/',
  'http://svc。internal/', 'http://ⓢⓥⓒ.ⓘⓝⓣⓔⓡⓝⓐⓛ/', 'http://printer.local/', 'http://router.home.arpa/', 'http://intranet/', 'http://x.onion/', 'http://x.invalid/',
  'http://internal.test/', 'http://www.example/', 'http://x.alt/', 'http://resolver.arpa/', 'http://ipv4only.arpa/', 'http://1.10.in-addr.arpa/',
  'http://x.service.arpa/', 'http://nas.lan/', 'http://.localhost/',
  // schemes other than http(s)
  'file:///etc/passwd', 'file://localhost/etc/passwd', 'gopher://127.0.0.1:70/_x', 'dict://127.0.0.1:11211/stat', 'ftp://127.0.0.1/', 'ldap://127.0.0.1/',
  'sftp://127.0.0.1/', 'tftp://127.0.0.1/x', 'jar:http://127.0.0.1!/', 'data:text/plain,hi', 'javascript:alert(1)', 'ws://127.0.0.1/', 'netdoc:///etc/passwd',
  // credentials and confusion
  'http://user:pass@8.8.8.8/', 'http://evil.com@127.0.0.1/', 'http://127.0.0.1:80@evil.com/', 'http://127.0.0.1 &@8.8.8.8# @3.3.3.3/',
  'http:127.0.0.1/', 'http:/127.0.0.1/', 'http://127.0.0.1\\@8.8.8.8/', 'http://[::1]:80/', 'not a url', '',
];

export const MUST_ALLOW: string[] = [
  'http://8.8.8.8/', 'https://1.1.1.1:8443/x', 'http://[2606:4700:4700::1111]/', 'http://public.example.com/', 'http://[::ffff:8.8.8.8]/', 'http://PUBLIC.example.com./',
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embedding a global IPv4 address
  'http://[64:ff9b::808:808]/', 'http://[64:ff9b::8.8.8.8]/', 'http://[2002:808:808::1]/', 'http://nat64-public.example.com/',
  // just outside special-purpose blocks
  'http://[2001:200::1]/', 'http://192.0.1.1/', 'http://[3fff:1000::1]/', 'http://[2001:db9::1]/', 'http://[2003::1]/',
];
