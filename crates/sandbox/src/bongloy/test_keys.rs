//! A fixed RSA key pair for tests and the demo, and a second pair for "signed by
//! another key" tests. Both were generated once with
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (the public
//! halves with `openssl pkey -pubout` and `openssl rsa -RSAPublicKey_out`).
//!
//! **These private keys are public: they sign requests to the simulator and
//! nothing else.** A production partner generates its own pair and hands
//! Bongloy the public half.
//!
//! The default [`BongloyConfig`](super::BongloyConfig) trusts
//! [`PARTNER_PUBLIC_KEY_PEM`] for [`PARTNER_API_TOKEN`] and
//! [`OTHER_PUBLIC_KEY_PEM`] for [`OTHER_API_TOKEN`].

/// The API token of the default configuration's first partner.
pub const PARTNER_API_TOKEN: &str = "sandbox-partner-api-token";

/// The API token of the default configuration's second partner, a different
/// organization.
pub const OTHER_API_TOKEN: &str = "sandbox-other-api-token";

/// The first partner's private key (PKCS#8, `PRIVATE KEY`).
pub const PARTNER_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDET8G3km5ItGiC\n\
GvPs/E02Q5BgKQMVpF070XBJUxxB1PQPV3ujL7SkbNNSSENn7qBZuW0/Gw8RqQyD\n\
469iEfkQT1aJ3YEKz0jv/1eI97Jn1V8Y3r4qXSMNVfljJ7mw8juhRg1pedLr+V8F\n\
+pqVhNNtNxyqghg5owPC/WJpIt0ErgUaTkZ6c3xq9auK5P8NseS9B3PDtU8CnBm2\n\
f55pn2UQJwin+eyh15GHUVqfhLhUTsyIgdHxcEz8bRecS9v01fvqPnrrRT0k7D0z\n\
MX5A/ZATWGsrTOF0Xa4BbNTrHcxKjO53F2fo/zrDRvUug4reaiSoUtTb1hQRgkca\n\
QIjuELM1AgMBAAECggEARfpOSgM7J9STemlkMUKgvWqpMPX9oP3VtEiMt76WEIt6\n\
MmvTaVDMml4mmCqlSIuiAkncfQXGwdtaWDtV3eYdO+ikJwHcCX/pdo+1YuA06tl/\n\
DCz+abiIkazneKaFBWPbyLnhdwtTmgVrD4UNDKZr/X8LS2aTfxwyb5QGPAcO9Sb4\n\
24sUItd9J1hDOVOUGwJP3YUDao7CkIl08ZMHrjOv+MPG5FwzP2j1iYWG2sBeNQo2\n\
oLYZuLqqyq+pTDVymFS6D9AVbbxKv63ExK2arhayReunWtvBukuCUrshoKTIogfQ\n\
diDxHYGGw3R0Us4QK2UNt+HmvvOPODUp48Xt1TMqYwKBgQDytAVV39uOTMC5JGFb\n\
GciptrwtTLnNnbOYTi1u153h83+OdkCwQ1ky3dZ7fyX0bTUz9i0ijem0ITWDUKSk\n\
nln5YKFnxxGWoc8BP82C/ONmCqYrqQ8Pr5aLYsmDs9fVkFrHyzG3Sb+1DLoJffoM\n\
VVjv2jUHw4Lb4KI9tEwoOJPbHwKBgQDPERSDjHpaoL9PUczGthMoc8jDh6oURk6l\n\
qCnu/bn5oYDTdrW9LRNK0/E6G/1si4MgiUsTVFVclnt4kpw+YYKkC2gI0LbbzsT4\n\
0N+ld3hZ+CZziF2rISW91weD3f9wcpRD8QL7580C+2HMDlApR/Tk/00NL4f8oVLx\n\
fl8X0a17KwKBgHxZc+pdubYc6Rly5FayzTb3I07qYsBQrnW4iFqkKoZcJdyuBdLJ\n\
juga9QttR9sGIR4wYUu0/iqGYU6YgOK/J0Y4Fjp/qilNWiw/rmIQg8oCZsUz5z2Y\n\
Lz/XK3xJJqqLPZfkKeLI7GoszRyT6Qtspxas7ELAD0nsu/N1bxekdUztAoGAI9kf\n\
Jg8h96KwvDi7LQPEmVJCRaetCEmLwB429Es08UTGmtWIbTHqjx/WOWszGqGkl/Ns\n\
7fHBvX/H7H3lUt9q0J+w6SXJIpDPhQwUS/889MaDUakgHkpk0FLz2B6M5JjRllmZ\n\
XKcq1QNUURGBS0RL34Fbg5bhAhmj1G8+Y09Hq3UCgYARNR1rrLb4AN/xg1N+hERq\n\
tXk0P9T4s3PGxrIdW34m7FtzrGnERQvIl8s93CWslEDaOvI8CxQMu174k0ktISAy\n\
mnHawuZlOsC4kATbhBbagloU5AQ+Dj2jgimEaQB5+pxokF2oDntoBzFTF1JvoaXj\n\
ndNZtaFMz74FeMY+08H1Jg==\n\
-----END PRIVATE KEY-----\n";

/// The first partner's public key (SPKI, `PUBLIC KEY`).
pub const PARTNER_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxE/Bt5JuSLRoghrz7PxN\n\
NkOQYCkDFaRdO9FwSVMcQdT0D1d7oy+0pGzTUkhDZ+6gWbltPxsPEakMg+OvYhH5\n\
EE9Wid2BCs9I7/9XiPeyZ9VfGN6+Kl0jDVX5Yye5sPI7oUYNaXnS6/lfBfqalYTT\n\
bTccqoIYOaMDwv1iaSLdBK4FGk5GenN8avWriuT/DbHkvQdzw7VPApwZtn+eaZ9l\n\
ECcIp/nsodeRh1Fan4S4VE7MiIHR8XBM/G0XnEvb9NX76j5660U9JOw9MzF+QP2Q\n\
E1hrK0zhdF2uAWzU6x3MSozudxdn6P86w0b1LoOK3mokqFLU29YUEYJHGkCI7hCz\n\
NQIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// The same public key as PKCS#1 (`RSA PUBLIC KEY`).
pub const PARTNER_PUBLIC_KEY_PKCS1_PEM: &str = "\
-----BEGIN RSA PUBLIC KEY-----\n\
MIIBCgKCAQEAxE/Bt5JuSLRoghrz7PxNNkOQYCkDFaRdO9FwSVMcQdT0D1d7oy+0\n\
pGzTUkhDZ+6gWbltPxsPEakMg+OvYhH5EE9Wid2BCs9I7/9XiPeyZ9VfGN6+Kl0j\n\
DVX5Yye5sPI7oUYNaXnS6/lfBfqalYTTbTccqoIYOaMDwv1iaSLdBK4FGk5GenN8\n\
avWriuT/DbHkvQdzw7VPApwZtn+eaZ9lECcIp/nsodeRh1Fan4S4VE7MiIHR8XBM\n\
/G0XnEvb9NX76j5660U9JOw9MzF+QP2QE1hrK0zhdF2uAWzU6x3MSozudxdn6P86\n\
w0b1LoOK3mokqFLU29YUEYJHGkCI7hCzNQIDAQAB\n\
-----END RSA PUBLIC KEY-----\n";

/// The second pair's private key (PKCS#8): "another key" for the first partner.
pub const OTHER_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC6+Fwt1+mPw1mE\n\
0vhz28D8OeBgiFaTzX9+wqnxOVjq/Vj+54dj2WmpxGp8cGos4Ss6w5GfHY4RRSox\n\
U2PlWZffwKRHdlEJekkcFvk3KGvfpvnPlC0EyEEloU4HyQkNz/gpbmNuPOOZoVzg\n\
Ci2kwaQAO0aC5qj/RUH//6aQW+n9thqMRvdyVW7aKrZd1eB66izrg5XFRfkCz1C6\n\
QlhoczXAPVeq8F+o9aS2V5hAIRJR+CEv3Yo/6LSxmN5zgzlVfF2lVXErlkN6rDs4\n\
ym1jYyNTl9vrBAe2bK6+tWawu/joWY95ONDYjbkPp8sWxxTJwyMImKFvyp3oJ8DK\n\
iCbp2NrPAgMBAAECggEALBE2dK2jhHlYA4jP+0qrsScY/deUhFCWgLNz54GLNhOR\n\
Yr8CN6P6FgPPz1WViM9nZ3nJvDV0kxh4qdiMPnW/6IJYlelKj0/NpHu7sGbsCfIq\n\
heTYOXzTcgGTSR12b1V5mZZFhCmAwWh5Yeq0OFVViKJv65Fe+o+Bz0sboIGxZFUc\n\
lgCnUoU4bcyO5wRuDSVGjZgMZ3f+GSKM5SdXvwGXKjV8Wp7NLHuaacFPKwRsIs4m\n\
79HUUcioyVWD4tznO7gVECGGQmF79Q0IL0laGFOeSYerPmQtRTenVeEJvBrZw386\n\
vODxa7WnfNQtLgxDSdugric5wfZpcy2dyzWaOjhqGQKBgQDpAEEX5Ifcx28sr7FH\n\
dxCBlmVXVgsig8OP44UYxM0LPXc8LuoeC9Js8oqDY1wrigczYqazjf7Sl9LWPNyR\n\
Lsnc/k7ImKIDijE073NwD0EvF6Pah64wug/BeA1w+XoUw89qOJ+osPNA6AmdSit1\n\
JZ3Qy/2K+Mdz51xTqSsAWoN66QKBgQDNbPGoHPzUjokcL/CW5pOLUKIkjhD0uVLV\n\
92jd+79SUKUzMNyehOtZ0S4tegYS1mNnu2sXkcUdNac39pk7GLqgiTeozKIwiKx1\n\
euB74TFqQjwz3pFRnReqgGITlCD4blc+susKbYqntlQBOtaNhCkfyoh6NViTgeh4\n\
ta4roECk9wKBgQCvACDj2CJvIV+P+Zm2Kmg8XIBbG2Ybk0mj3egOlWnH4m+WxUnU\n\
LV7rszNzwYHttar43kSEocbd12hkvquPY8v77wmvQmyVKgsRTjOu29ZCj4fiz3t2\n\
X5kL36aAzu/xfqxfhI3uPpFFk8H84ENJpmok88HHyljL5d6De5CvoEwWWQKBgQCf\n\
aUBqTfxhUi7SId2YrFuoy6zXoytDTaEbi3/ka1y/mvdnry41ET61l183SS73ZUkE\n\
kWr8glEtZppaElI8iucgdvsrUYk3EoiKLg2P9GPtanLfaYLpi3d3B2OUf+nJ/45S\n\
iHNexzzHAvVTcv5WGU30bq3T8BvJdBEbwxjin9wqZwKBgGMdxfGy3HgKyEfgTUz9\n\
ubaO1JwUwDy+RJot7tgAzTNStBmkcKBsEvJnpXBwGY5J/q4m49hj1C/gpLdfX1cB\n\
wO8Cy2mYMcW72jOEz6mb/Xb/HXPglha6Oz3HKQluyC37qOjOD33WqtnHGgvm5hdk\n\
rtFdOU1+BLmit+d5K9CXZN0Z\n\
-----END PRIVATE KEY-----\n";

/// The second pair's public key (SPKI).
pub const OTHER_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuvhcLdfpj8NZhNL4c9vA\n\
/DngYIhWk81/fsKp8TlY6v1Y/ueHY9lpqcRqfHBqLOErOsORnx2OEUUqMVNj5VmX\n\
38CkR3ZRCXpJHBb5Nyhr36b5z5QtBMhBJaFOB8kJDc/4KW5jbjzjmaFc4AotpMGk\n\
ADtGguao/0VB//+mkFvp/bYajEb3clVu2iq2XdXgeuos64OVxUX5As9QukJYaHM1\n\
wD1XqvBfqPWktleYQCESUfghL92KP+i0sZjec4M5VXxdpVVxK5ZDeqw7OMptY2Mj\n\
U5fb6wQHtmyuvrVmsLv46FmPeTjQ2I25D6fLFscUycMjCJihb8qd6CfAyogm6dja\n\
zwIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// The second pair's public key as PKCS#1 (`RSA PUBLIC KEY`).
pub const OTHER_PUBLIC_KEY_PKCS1_PEM: &str = "\
-----BEGIN RSA PUBLIC KEY-----\n\
MIIBCgKCAQEAuvhcLdfpj8NZhNL4c9vA/DngYIhWk81/fsKp8TlY6v1Y/ueHY9lp\n\
qcRqfHBqLOErOsORnx2OEUUqMVNj5VmX38CkR3ZRCXpJHBb5Nyhr36b5z5QtBMhB\n\
JaFOB8kJDc/4KW5jbjzjmaFc4AotpMGkADtGguao/0VB//+mkFvp/bYajEb3clVu\n\
2iq2XdXgeuos64OVxUX5As9QukJYaHM1wD1XqvBfqPWktleYQCESUfghL92KP+i0\n\
sZjec4M5VXxdpVVxK5ZDeqw7OMptY2MjU5fb6wQHtmyuvrVmsLv46FmPeTjQ2I25\n\
D6fLFscUycMjCJihb8qd6CfAyogm6djazwIDAQAB\n\
-----END RSA PUBLIC KEY-----\n";
