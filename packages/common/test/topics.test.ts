import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_TOPICS, resolveTopic, validateTopicName } from '../src';

test('default topic names are legal and versioned', () => {
  for (const name of Object.values(DEFAULT_TOPICS)) {
    assert.equal(validateTopicName(name), undefined);
    assert.match(name, /^netmon\.[a-z]+\.v\d+$/);
  }
});

test('illegal topic names say why', () => {
  assert.equal(validateTopicName(''), 'empty');
  assert.equal(validateTopicName('..'), '".." is reserved');
  assert.match(validateTopicName('a'.repeat(250)) ?? '', /at most 249/);
  assert.match(validateTopicName('bad topic') ?? '', /only letters/);
});

test('aliases resolve to the configured topics', () => {
  const topics = { raw: 'r.v1', events: 'e.v1', dlq: 'd.v1' };
  assert.equal(resolveTopic(topics, 'events'), 'e.v1');
  assert.equal(resolveTopic(topics, 'custom.topic'), 'custom.topic');
  assert.throws(() => resolveTopic(topics, 'no/slash'), /only letters/);
});
