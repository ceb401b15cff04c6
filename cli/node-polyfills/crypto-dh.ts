/**
 * node:crypto's createECDH (ECDH, ECDH.convertKey) and finite-field Diffie-Hellman (createDiffieHellman,
 * getDiffieHellman/createDiffieHellmanGroup with RFC 3526's groups, as workerd has them). The arithmetic
 * is the host's node:crypto (crypto-host.ts): BigInt in the isolate is ~80x slower (an 8192-bit modular
 * power took ~2 s here), and WebCrypto has neither. The host gets DH keys as pkcs8/spki DER, which the
 * isolate builds from the numbers it holds, so each call is stateless.
 */
import { Buffer } from 'node:buffer';
import { buf, hostCall } from './crypto-host.ts';
import { toBytes } from './crypto-keys.ts';
import { children, derInt, readTlv, tlv } from './der.ts';

type Input = string | ArrayBufferView | ArrayBuffer;
type Bytes = Uint8Array;
type Format = 'compressed' | 'uncompressed' | 'hybrid';

const nodeError = (message: string, code: string | undefined, Ctor: ErrorConstructor = Error) => Object.assign(new Ctor(message), code ? { code } : {});
const encode = (b: Bytes, encoding?: BufferEncoding): Buffer | string => {
  const out = Buffer.from(b);
  return encoding && encoding !== ('buffer' as BufferEncoding) ? out.toString(encoding) : out;
};
const format = (f: unknown): Format => {
  if (f === undefined || f === null) return 'uncompressed';
  if (f === 'compressed' || f === 'uncompressed' || f === 'hybrid') return f;
  throw nodeError(`Invalid ECDH format: ${String(f)}`, 'ERR_CRYPTO_ECDH_INVALID_FORMAT', TypeError);
};

/** workerd's curves for ECDH (and getCurves()). */
const CURVES = ['secp224r1', 'prime256v1', 'secp384r1', 'secp521r1'];
export const getCurves = () => [...CURVES];

/** An uncompressed point (04‖x‖y) in another format: compressed (02/03‖x) or hybrid (06/07‖x‖y). */
function pointAs(point: Bytes, f: Format): Bytes {
  if (f === 'uncompressed') return point;
  const odd = point[point.length - 1]! & 1;
  const x = point.subarray(1, 1 + (point.length - 1) / 2);
  const out = f === 'compressed' ? new Uint8Array(1 + x.length) : point.slice();
  if (f === 'compressed') out.set(x, 1);
  out[0] = (f === 'compressed' ? 2 : 6) + odd;
  return out;
}

export class ECDH {
  readonly #curve: string;
  #privateKey: Bytes | undefined;
  #publicKey: Bytes | undefined;
  constructor(curve: string) {
    if (typeof curve !== 'string') throw nodeError('The "curve" argument must be of type string.', 'ERR_INVALID_ARG_TYPE', TypeError);
    if (!CURVES.includes(curve)) throw nodeError('Invalid curve', undefined);
    this.#curve = curve;
  }
  #set(privateKey?: Bytes): void {
    const pair = hostCall({ op: 'node.ecdh', curve: this.#curve, format: 'uncompressed', ...(privateKey ? { privateKey: buf(privateKey) } : {}) }, 'pair');
    this.#privateKey = new Uint8Array(pair.privateKey);
    this.#publicKey = new Uint8Array(pair.publicKey);
  }
  generateKeys(encoding?: BufferEncoding, f?: Format): Buffer | string {
    this.#set();
    return this.getPublicKey(encoding, f);
  }
  computeSecret(otherPublicKey: Input, inputEncoding?: BufferEncoding, outputEncoding?: BufferEncoding): Buffer | string {
    if (!this.#privateKey) throw nodeError('Failed to get ECDH private key', undefined);
    const peer = toBytes(otherPublicKey, inputEncoding);
    const secret = hostCall({ op: 'node.ecdh', curve: this.#curve, format: 'uncompressed', privateKey: buf(this.#privateKey), peer: buf(peer) }, 'bytes');
    return encode(new Uint8Array(secret), outputEncoding);
  }
  getPrivateKey(encoding?: BufferEncoding): Buffer | string {
    if (!this.#privateKey) throw nodeError('Failed to get ECDH private key', undefined);
    return encode(this.#privateKey, encoding);
  }
  getPublicKey(encoding?: BufferEncoding | null, f?: Format): Buffer | string {
    if (!this.#publicKey) throw nodeError('Failed to get ECDH public key', undefined);
    return encode(pointAs(this.#publicKey, format(f)), encoding ?? undefined);
  }
  /** Returns nothing, as workerd's does. */
  setPrivateKey(privateKey: Input, encoding?: BufferEncoding): void {
    this.#set(toBytes(privateKey, encoding));
  }
  static convertKey(key: Input, curve: string, inputEncoding?: BufferEncoding, outputEncoding?: BufferEncoding, f?: Format): Buffer | string {
    if (!CURVES.includes(curve)) throw nodeError('Invalid curve', undefined);
    const out = hostCall({ op: 'node.ecdhConvert', curve, key: buf(toBytes(key, inputEncoding)), format: format(f) }, 'bytes');
    return encode(new Uint8Array(out), outputEncoding);
  }
}
export const createECDH = (curve: string) => new ECDH(curve);

/** RFC 3526's MODP groups 14–18 (the ones workerd offers), generator 2: the primes are 2^n − 2^(n−64) − 1 + 2^64·(⌊2^(n−130)·π⌋ + k). */
const MODP: Record<string, string> = {
  modp14:
    'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF',
  modp15:
    'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF',
  modp16:
    'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF',
  modp17:
    'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026C1D4DCB2602646DEC9751E763DBA37BDF8FF9406AD9E530EE5DB382F413001AEB06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1BDB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92ECF032EA15D1721D03F482D7CE6E74FEF6D55E702F46980C82B5A84031900B1C9E59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AACC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76F550AA3D8A1FBFF0EB19CCB1A313D55CDA56C9EC2EF29632387FE8D76E3C0468043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DCC4024FFFFFFFFFFFFFFFF',
  modp18:
    'FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D788719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA993B4EA988D8FDDC186FFB7DC90A6C08F4DF435C93402849236C3FAB4D27C7026C1D4DCB2602646DEC9751E763DBA37BDF8FF9406AD9E530EE5DB382F413001AEB06A53ED9027D831179727B0865A8918DA3EDBEBCF9B14ED44CE6CBACED4BB1BDB7F1447E6CC254B332051512BD7AF426FB8F401378CD2BF5983CA01C64B92ECF032EA15D1721D03F482D7CE6E74FEF6D55E702F46980C82B5A84031900B1C9E59E7C97FBEC7E8F323A97A7E36CC88BE0F1D45B7FF585AC54BD407B22B4154AACC8F6D7EBF48E1D814CC5ED20F8037E0A79715EEF29BE32806A1D58BB7C5DA76F550AA3D8A1FBFF0EB19CCB1A313D55CDA56C9EC2EF29632387FE8D76E3C0468043E8F663F4860EE12BF2D5B0B7474D6E694F91E6DBE115974A3926F12FEE5E438777CB6A932DF8CD8BEC4D073B931BA3BC832B68D9DD300741FA7BF8AFC47ED2576F6936BA424663AAB639C5AE4F5683423B4742BF1C978238F16CBE39D652DE3FDB8BEFC848AD922222E04A4037C0713EB57A81A23F0C73473FC646CEA306B4BCBC8862F8385DDFA9D4B7FA2C087E879683303ED5BDD3A062B3CF5B3A278A66D2A13F83F44F82DDF310EE074AB6A364597E899A0255DC164F31CC50846851DF9AB48195DED7EA1B1D510BD7EE74D73FAF36BC31ECFA268359046F4EB879F924009438B481C6CD7889A002ED5EE382BC9190DA6FC026E479558E4475677E9AA9E3050E2765694DFC81F56E880B96E7160C980DD98EDD3DFFFFFFFFFFFFFFFFF',
};

/** The host's largest DH prime and prime-test candidate (host-node-crypto.ts). */
const MAX_DH_BYTES = 8192 / 8;
const DH_OID = Uint8Array.from(Buffer.from('2a864886f70d010301', 'hex')); // dhKeyAgreement (PKCS #3)
const strip = (b: Bytes) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
};
const big = (b: Bytes) => (b.length ? BigInt(`0x${Buffer.from(b).toString('hex')}`) : 0n);
const unbig = (n: bigint) => {
  const h = n.toString(16);
  return Uint8Array.from(Buffer.from(h.length % 2 ? `0${h}` : h, 'hex'));
};

// BoringSSL's DH_check flags, which verifyError reports.
const DH_CHECK_P_NOT_PRIME = 0x01;
const DH_CHECK_P_NOT_SAFE_PRIME = 0x02;
const DH_UNABLE_TO_CHECK_GENERATOR = 0x04;
const DH_NOT_SUITABLE_GENERATOR = 0x08;

const isPrime = (n: Bytes) => hostCall({ op: 'node.checkPrime', candidate: buf(n), checks: 0 }, 'ok');

/** DH_check as BoringSSL runs it when there is no q: the generator by the prime's residue, then p and (p−1)/2 prime. */
function verify(p: Bytes, g: Bytes, known: boolean): number {
  const P = big(p);
  const G = big(g);
  let flags =
    G === 2n
      ? P % 24n !== 11n
        ? DH_NOT_SUITABLE_GENERATOR
        : 0
      : G === 5n
        ? P % 10n !== 3n && P % 10n !== 7n
          ? DH_NOT_SUITABLE_GENERATOR
          : 0
        : DH_UNABLE_TO_CHECK_GENERATOR;
  // RFC 3526's primes are safe primes: checking them again would be seconds of host work at 8192 bits.
  if (known) return flags;
  if (!isPrime(p)) flags |= DH_CHECK_P_NOT_PRIME;
  else if (!isPrime(unbig(P >> 1n))) flags |= DH_CHECK_P_NOT_SAFE_PRIME;
  return flags;
}

export class DiffieHellman {
  readonly #p: Bytes;
  readonly #g: Bytes;
  #x: Bytes | undefined;
  #y: Bytes | undefined;
  #verifyError: number;
  constructor(
    sizeOrKey: number | Input,
    keyEncoding?: BufferEncoding | number | Input,
    generator: number | Input = 2,
    genEncoding?: BufferEncoding,
    known?: string,
  ) {
    let g: number | Input = generator;
    // Node's shapes: (prime, primeEncoding?, generator?, generatorEncoding?) and (prime, generator, generatorEncoding?).
    if (keyEncoding !== undefined && typeof keyEncoding !== 'string') {
      genEncoding = typeof generator === 'string' ? (generator as BufferEncoding) : undefined;
      g = keyEncoding;
      keyEncoding = undefined;
    }
    this.#g = typeof g === 'number' ? unbig(BigInt(g)) : strip(toBytes(g, genEncoding));
    if (big(this.#g) < 2n) throw nodeError('DiffieHellman init failed: bad generator', 'ERR_OSSL_DH_BAD_GENERATOR');
    if (typeof sizeOrKey === 'number') {
      if (!Number.isInteger(sizeOrKey) || sizeOrKey < 2)
        throw nodeError(`The value of "sizeOrKey" is out of range. Received ${sizeOrKey}`, 'ERR_OUT_OF_RANGE', RangeError);
      // OpenSSL's DH_generate_parameters: a safe prime with p ≡ 11 (mod 24) for generator 2, p ≡ 3 (mod 10) for 5.
      const G = big(this.#g);
      const [add, rem] = G === 2n ? [24n, 11n] : G === 5n ? [10n, 3n] : [2n, 1n];
      this.#p = new Uint8Array(hostCall({ op: 'node.generatePrime', bits: sizeOrKey, safe: true, add: buf(unbig(add)), rem: buf(unbig(rem)) }, 'bytes'));
    } else {
      this.#p = strip(toBytes(sizeOrKey, keyEncoding as BufferEncoding | undefined));
      // workerd's limit is 10,000 bits; the host's is RFC 3526's largest group (host-node-crypto.ts).
      if (this.#p.length > MAX_DH_BYTES) throw nodeError('DiffieHellman init failed: key is too large', undefined, RangeError);
    }
    this.#verifyError = verify(this.#p, this.#g, known !== undefined);
  }
  get verifyError(): number {
    return this.#verifyError;
  }
  #der(kind: 'private' | 'public', value: Bytes): Bytes {
    const algorithm = tlv(0x30, tlv(6, DH_OID), tlv(0x30, derInt(this.#p), derInt(this.#g)));
    const v = derInt(value);
    return kind === 'private' ? tlv(0x30, Uint8Array.of(2, 1, 0), algorithm, tlv(4, v)) : tlv(0x30, algorithm, tlv(3, Uint8Array.of(0), v));
  }
  generateKeys(encoding?: BufferEncoding): Buffer | string {
    if (this.#x) {
      // The public value of a private key set by setPrivateKey: g^x, the "secret" with g as the peer's public value.
      this.#y = strip(this.#secret(this.#g));
    } else {
      const gen = Number(big(this.#g));
      if (!Number.isSafeInteger(gen) || gen > 2 ** 31 - 1)
        throw nodeError('DiffieHellman: generators above 2^31 are not supported here', 'ERR_OUT_OF_RANGE', RangeError);
      const pair = hostCall({ op: 'node.dhGenerate', prime: buf(this.#p), generator: gen }, 'pair');
      this.#x = integerIn(new Uint8Array(pair.privateKey), 'private');
      this.#y = integerIn(new Uint8Array(pair.publicKey), 'public');
    }
    return encode(this.#y, encoding);
  }
  #secret(peer: Bytes): Bytes {
    if (!this.#x) throw nodeError('DiffieHellman: generateKeys() or setPrivateKey() first', 'ERR_CRYPTO_INVALID_STATE');
    const publicKey = buf(this.#der('public', strip(peer)));
    return new Uint8Array(hostCall({ op: 'node.dhSecret', privateKey: buf(this.#der('private', this.#x)), publicKey }, 'bytes'));
  }
  computeSecret(otherPublicKey: Input, inputEncoding?: BufferEncoding, outputEncoding?: BufferEncoding): Buffer | string {
    const secret = strip(this.#secret(toBytes(otherPublicKey, inputEncoding)));
    // Node pads the secret to the prime's length.
    const out = new Uint8Array(this.#p.length);
    out.set(secret, out.length - secret.length);
    return encode(out, outputEncoding);
  }
  getPrime(encoding?: BufferEncoding): Buffer | string {
    return encode(this.#p, encoding);
  }
  getGenerator(encoding?: BufferEncoding): Buffer | string {
    return encode(this.#g, encoding);
  }
  getPublicKey(encoding?: BufferEncoding): Buffer | string {
    if (!this.#y) throw nodeError('No public key - did you forget to generate one?', 'ERR_CRYPTO_INVALID_STATE');
    return encode(this.#y, encoding);
  }
  getPrivateKey(encoding?: BufferEncoding): Buffer | string {
    if (!this.#x) throw nodeError('No private key - did you forget to generate one?', 'ERR_CRYPTO_INVALID_STATE');
    return encode(this.#x, encoding);
  }
  setPublicKey(key: Input, encoding?: BufferEncoding): this {
    this.#y = strip(toBytes(key, encoding));
    return this;
  }
  setPrivateKey(key: Input, encoding?: BufferEncoding): this {
    this.#x = strip(toBytes(key, encoding));
    return this;
  }
}

/** The INTEGER inside a DH pkcs8 key's OCTET STRING, or an spki's BIT STRING. */
function integerIn(der: Bytes, kind: 'private' | 'public'): Bytes {
  const parts = children(der, readTlv(der, 0));
  const holder = parts[kind === 'private' ? 2 : 1]!;
  const int = readTlv(der, holder.start + (kind === 'public' ? 1 : 0));
  return strip(der.subarray(int.start, int.end)).slice();
}

export class DiffieHellmanGroup extends DiffieHellman {
  constructor(name: string) {
    const prime = typeof name === 'string' ? MODP[name] : undefined;
    if (!prime)
      throw nodeError('Failed to init DiffieHellmanGroup: invalid group. Only groups {modp14, modp15, modp16, modp17, modp18} are supported.', undefined);
    super(Buffer.from(prime, 'hex'), undefined, 2, undefined, name);
  }
}
for (const m of ['setPublicKey', 'setPrivateKey'] as const) Object.defineProperty(DiffieHellmanGroup.prototype, m, { value: undefined });

export const createDiffieHellman = (
  sizeOrKey: number | Input,
  keyEncoding?: BufferEncoding | number | Input,
  generator?: number | Input,
  genEncoding?: BufferEncoding,
) => new DiffieHellman(sizeOrKey, keyEncoding, generator, genEncoding);
export const getDiffieHellman = (name: string) => new DiffieHellmanGroup(name);
export const createDiffieHellmanGroup = getDiffieHellman;

type PrimeInput = ArrayBuffer | ArrayBufferView | bigint;
const primeBytes = (v: PrimeInput, what: string): Bytes => {
  if (typeof v === 'bigint') {
    if (v < 0n) throw nodeError(`The value of "${what}" is out of range. It must be >= 0. Received ${v}n`, 'ERR_OUT_OF_RANGE', RangeError);
    return unbig(v);
  }
  if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return toBytes(v);
  throw nodeError(`The "${what}" argument must be an instance of ArrayBuffer, TypedArray, Buffer, DataView, or bigint.`, 'ERR_INVALID_ARG_TYPE', TypeError);
};

interface PrimeOptions {
  add?: PrimeInput;
  rem?: PrimeInput;
  safe?: boolean;
  bigint?: boolean;
}
/** A random prime of `size` bits, from the host (its thread pool; sizes capped there). */
export function generatePrimeSync(size: number, options: PrimeOptions = {}): ArrayBuffer | bigint {
  if (!Number.isInteger(size) || size < 1 || size > 2 ** 31 - 1)
    throw nodeError(`The value of "size" is out of range. It must be >= 1 && <= 2147483647. Received ${size}`, 'ERR_OUT_OF_RANGE', RangeError);
  const p = hostCall(
    {
      op: 'node.generatePrime',
      bits: size,
      safe: Boolean(options.safe),
      ...(options.add !== undefined ? { add: buf(primeBytes(options.add, 'options.add')) } : {}),
      ...(options.rem !== undefined ? { rem: buf(primeBytes(options.rem, 'options.rem')) } : {}),
    },
    'bytes',
  );
  return options.bigint ? big(new Uint8Array(p)) : p;
}
export function generatePrime(
  size: number,
  options: PrimeOptions | ((e: Error | null, p?: ArrayBuffer | bigint) => void),
  cb?: (e: Error | null, p?: ArrayBuffer | bigint) => void,
): void {
  const [opts, done] = typeof options === 'function' ? [{}, options] : [options, cb];
  if (typeof done !== 'function') throw nodeError('The "callback" argument must be of type function.', 'ERR_INVALID_ARG_TYPE', TypeError);
  let p: ArrayBuffer | bigint;
  try {
    p = generatePrimeSync(size, opts);
  } catch (e) {
    queueMicrotask(() => done(e as Error));
    return;
  }
  queueMicrotask(() => done(null, p));
}
export function checkPrimeSync(candidate: PrimeInput, options: { checks?: number } = {}): boolean {
  const checks = options.checks ?? 0;
  if (!Number.isInteger(checks) || checks < 0)
    throw nodeError(`The value of "options.checks" is out of range. It must be >= 0. Received ${checks}`, 'ERR_OUT_OF_RANGE', RangeError);
  const bytes = strip(primeBytes(candidate, 'candidate'));
  // workerd's message; the host's cap is the same size (host-node-crypto.ts).
  if (bytes.length > MAX_DH_BYTES) throw nodeError('checkPrime candidate exceeds maximum size', 'ERR_OUT_OF_RANGE', RangeError);
  return hostCall({ op: 'node.checkPrime', candidate: buf(bytes), checks }, 'ok');
}
export function checkPrime(
  candidate: PrimeInput,
  options: { checks?: number } | ((e: Error | null, ok?: boolean) => void),
  cb?: (e: Error | null, ok?: boolean) => void,
): void {
  const [opts, done] = typeof options === 'function' ? [{}, options] : [options, cb];
  if (typeof done !== 'function') throw nodeError('The "callback" argument must be of type function.', 'ERR_INVALID_ARG_TYPE', TypeError);
  let ok: boolean;
  try {
    ok = checkPrimeSync(candidate, opts);
  } catch (e) {
    queueMicrotask(() => done(e as Error));
    return;
  }
  queueMicrotask(() => done(null, ok));
}
