// Ed25519 signatures of a wrong form, made from a good EdDSA token: S + L
// (L the group order: the same value mod L, a malleated signature) and a
// small-order R. Every path of the verifier must refuse both.
const L = Buffer.from("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010", "hex");
const SMALL_ORDER_R = Buffer.from("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", "hex");

export function badEd25519Forms(token) {
  const [header, payload, signature] = token.split(".");
  const bytes = Buffer.from(signature, "base64url");
  const sPlusL = Buffer.from(bytes);
  let carry = 0;
  for (let i = 0; i < 32; i += 1) {
    const sum = sPlusL[32 + i] + L[i] + carry;
    sPlusL[32 + i] = sum & 0xff;
    carry = sum >> 8;
  }
  const smallR = Buffer.from(bytes);
  smallR.set(SMALL_ORDER_R, 0);
  const withSignature = (sig) => `${header}.${payload}.${sig.toString("base64url")}`;
  return { nonCanonicalS: withSignature(sPlusL), smallOrderR: withSignature(smallR) };
}
