// createS3Client's words for a connection that got no HTTP answer: the endpoint,
// the cause and the setting to check, on one line (the real server cases run in
// test/integration/test/s3-https.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NetmonError, S3ConnectionError, createS3Client, explainS3ConnectionError } from '../src';

const https = { endpoint: 'https://127.0.0.1:9443', region: 'us-east-1' };
const tlsError = (code: string, message: string) => Object.assign(new Error(message), { code, $metadata: { attempts: 1 } });

describe('explainS3ConnectionError', () => {
  test('an untrusted certificate names the endpoint, the code and s3.ca_file', () => {
    const err = tlsError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain');
    const without = explainS3ConnectionError(err, https);
    assert.ok(without instanceof S3ConnectionError);
    assert.equal(without.code, 'SELF_SIGNED_CERT_IN_CHAIN');
    assert.equal(without.cause, err);
    assert.match(
      without.message,
      /^S3 at https:\/\/127\.0\.0\.1:9443: TLS: the server's certificate does not verify against Node's built-in CAs \(SELF_SIGNED_CERT_IN_CHAIN\); for a private CA, set s3\.ca_file/,
    );
    const withCa = explainS3ConnectionError(tlsError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), {
      ...https,
      caFile: '/etc/netmon/ca.pem',
    });
    assert.match(withCa!.message, /does not verify against the CAs of s3\.ca_file \/etc\/netmon\/ca\.pem \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    assert.match(
      explainS3ConnectionError(tlsError('SELF_SIGNED_CERT_IN_CHAIN', 'x'), { endpoint: '', region: 'eu-west-1' })!.message,
      /^S3 at AWS S3 \(eu-west-1\): /,
    );
  });

  test('expired, wrong host, TLS against a plain port, plain HTTP against a TLS port', () => {
    assert.match(
      explainS3ConnectionError(tlsError('CERT_HAS_EXPIRED', 'certificate has expired'), https)!.message,
      /certificate has expired \(CERT_HAS_EXPIRED\)/,
    );
    assert.match(
      explainS3ConnectionError(tlsError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"), https)!.message,
      /not issued for the endpoint's host/,
    );
    const wrongVersion = tlsError('EPROTO', 'write EPROTO 80:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:ssl3_record.c:350:\n');
    const explained = explainS3ConnectionError(wrongVersion, https)!;
    assert.match(explained.message, /TLS handshake failed \(EPROTO\): the server does not speak TLS on this port/);
    assert.equal(wrongVersion.message.includes('\n'), false, "the cause's message is one line");
    const plain = { endpoint: 'http://127.0.0.1:9443', region: 'us-east-1' };
    assert.match(
      explainS3ConnectionError(tlsError('HPE_INVALID_CONSTANT', 'Parse Error: Expected HTTP/'), plain)!.message,
      /^S3 at http:\/\/127\.0\.0\.1:9443: the answer is not HTTP \(HPE_INVALID_CONSTANT\): a TLS port\?/,
    );
  });

  test("left alone: the server's answers, an unreachable server, errors without a code", () => {
    const answered = Object.assign(new Error('Access Denied'), { code: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    assert.equal(explainS3ConnectionError(answered, https), undefined);
    assert.equal(explainS3ConnectionError(tlsError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:9443'), https), undefined);
    assert.equal(explainS3ConnectionError(tlsError('HPE_INVALID_CONSTANT', 'Parse Error'), https), undefined, 'https: not a TLS port mix-up');
    assert.equal(explainS3ConnectionError(new Error('boom'), https), undefined);
    assert.equal(explainS3ConnectionError('a string', https), undefined);
  });
});

test('createS3Client: an s3.ca_file that cannot be read is named', () => {
  assert.throws(
    () => createS3Client({ ...https, bucket: 'b-1', prefix: 'p', forcePathStyle: true, caFile: '/nonexistent/ca.pem' }),
    (err: unknown) => err instanceof NetmonError && /^s3\.ca_file: cannot read \/nonexistent\/ca\.pem: ENOENT/.test(err.message),
  );
});
