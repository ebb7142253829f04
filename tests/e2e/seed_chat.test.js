'use strict';
/*
 * chat.md against deploy/examples/chat/ as shipped (2 workers, its
 * handlers/chat.lua): rooms (join:chat, leave:chat, room:info, room:list,
 * room:online), messaging (message:send with message:new / message:sent,
 * typing with expiry, message:typing-users, delivered and read receipts,
 * message:delivery-status, message:stats), presence (presence:* and the
 * user:* broadcasts), recovery sessions (connection:*), monitoring
 * (monitoring:*), the three rate limits and the error responses. Shared
 * state is checked across the two workers (the API's socket listing says
 * which worker serves a socket). Chat access comes from the token's claim,
 * or from a stand-in backend (a second instance with vars.access_url).
 * Each client connects from its own 127.0.x.y address: the connection
 * limit is 5 per address and 5 minutes. The seed's client example runs as
 * it stands.
 */
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const jwt = require('jsonwebtoken');
const { stopAndCheck, delay, freePort } = require('./lib/harness');
const { io, waitConnected, connectError, closeAll, waitUntil, ack } = require('./lib/clients');
const { startExample, runSeedClient } = require('./lib/examples');

const SECRET = 'change-me-chat-jwt-secret-0123456789';     /* the shipped jwt.secret */
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let emitd;
test.before(async () => { emitd = await startExample('chat'); });
test.after(async () => { if (emitd) await emitd.stop(); });

/* A fresh loopback source address for each client (not 127.0.0.1). */
let nextAddr = 0;
function address() {
  nextAddr++;
  return `127.0.${10 + Math.floor(nextAddr / 250)}.${1 + (nextAddr % 250)}`;
}

function token(sub, { chats = ['c1', 'c2'], ...rest } = {}) {
  return jwt.sign({ sub, username: `name-${sub}`, chats, ...rest }, SECRET, { algorithm: 'HS256', expiresIn: '1h' });
}

/* A /chat client recording every event in s.seen; s.worker from the API. */
async function user(sub, { claims, target = emitd, addr = address(), transports = ['websocket'], tok } = {}) {
  const s = io(`${target.url}/chat`, { forceNew: true, reconnection: false, transports,
    agent: new http.Agent({ localAddress: addr }), auth: { token: tok || token(sub, claims) } });
  s.seen = [];
  s.onAny((event, ...args) => s.seen.push([event, ...args]));
  await waitConnected(s);
  const r = await target.api('GET', `/v1/sockets?namespace=/chat&room=${encodeURIComponent(s.id)}`);
  s.worker = r.body.sockets[0].worker;
  return s;
}
const events = (s, name) => s.seen.filter((e) => e[0] === name).map((e) => e[1]);
const call = async (s, event, data) => (await ack(s, event, data))[0];

/* Users placed on both workers (bounded: extra clients are closed). */
async function spread(subs, opts) {
  const kept = [];
  const extra = [];
  try {
    for (let i = 0; i < 20 && kept.length < subs.length; i++) {
      const s = await user(subs[kept.length], opts);
      const workers = new Set(kept.map((k) => k.worker));
      if (kept.length === subs.length - 1 && workers.size === 1 && workers.has(s.worker)) extra.push(s);
      else kept.push(s);
    }
  } finally {
    closeAll(extra);
  }
  if (kept.length !== subs.length) throw new Error('could not place the users on both workers');
  return kept;
}

test('connecting needs a valid token; the connect_error says why', async () => {
  const mk = (auth) => io(`${emitd.url}/chat`, { forceNew: true, reconnection: false, transports: ['websocket'],
    agent: new http.Agent({ localAddress: address() }), auth });
  const socks = [mk({}), mk({ token: 'garbage' }), mk({ token: jwt.sign({ sub: 'x' }, 'another-secret-000000000') }),
    mk({ token: jwt.sign({ sub: 'x', exp: Math.floor(Date.now() / 1000) - 600 }, SECRET) })];
  try {
    const errs = await Promise.all(socks.map((s) => connectError(s)));
    assert.deepEqual(errs.map((e) => e.message), ['Authentication required', 'Invalid token', 'Invalid token', 'Token expired']);
  } finally {
    closeAll(socks);
  }
});

test('a token that expires while connected: every event answers "User not authenticated"', async () => {
  const exp = Math.floor(Date.now() / 1000) + 2;
  const s = await user('short-lived', { tok: jwt.sign({ sub: 'short-lived', chats: ['e1'], exp }, SECRET) });
  try {
    assert.equal((await call(s, 'join:chat', { chatId: 'e1' })).success, true);
    await delay(Math.max(0, exp * 1000 - Date.now()) + 300);
    for (const ev of ['message:send', 'join:chat', 'presence:stats', 'message:read']) {
      assert.deepEqual(await call(s, ev, { chatId: 'e1', content: 'x', messageId: 'm' }),
        { success: false, message: 'User not authenticated' }, ev);
    }
  } finally {
    closeAll(s);
  }
});

test('rooms: join:chat, room:info, room:list, room:online, leave:chat, with their events, across workers', async () => {
  const [ann, bob] = await spread(['r-ann', 'r-bob'], {
    claims: { chats: [{ id: 'room-1', name: 'Design', description: 'Design talk' }, 'room-2'] } });
  const out = await user('r-out', { claims: { chats: ['elsewhere'] } });
  try {
    assert.notEqual(ann.worker, bob.worker);
    let r = await call(ann, 'join:chat', { chatId: 'room-1' });
    assert.deepEqual(Object.keys(r).sort(), ['message', 'roomInfo', 'success']);
    assert.equal(r.success, true);
    assert.equal(r.message, 'Joined chat successfully');
    assert.equal(r.roomInfo.chatId, 'room-1');
    assert.equal(r.roomInfo.participantCount, 1);
    assert.equal(r.roomInfo.isActive, true);
    assert.match(r.roomInfo.lastActivity, ISO);
    assert.equal(events(ann, 'room:joined').length, 1);
    assert.equal(events(ann, 'room:joined')[0].chatId, 'room-1');

    r = await call(bob, 'join:chat', { chatId: 'room-1' });
    assert.equal(r.roomInfo.participantCount, 2, 'participants counted across workers');
    await waitUntil('user:joined at ann', () => events(ann, 'user:joined').length === 1);
    const joined = events(ann, 'user:joined')[0];
    assert.equal(joined.chatId, 'room-1');
    assert.equal(joined.userId, 'r-bob');
    assert.equal(joined.username, 'name-r-bob');
    assert.match(joined.timestamp, ISO);
    /* Not to the joining user. (ann's own join may reach bob too: bob
     * joined on the other worker right after it, before that broadcast was
     * relayed there, and a room broadcast reaches whoever is in the room
     * when it is delivered, as across Node servers.) */
    assert.deepEqual(events(bob, 'user:joined').filter((e) => e.userId === 'r-bob'), [],
                     'not to the joining user');
    await waitUntil('room:info, updated', () => events(ann, 'room:info').length === 1);
    assert.equal(events(ann, 'room:info')[0].chatId, 'room-1');
    assert.equal(events(ann, 'room:info')[0].participantCount, 2);
    await waitUntil('room:online-update with both', () => events(ann, 'room:online-update')
      .some((u) => u.chatId === 'room-1' && u.onlineCount === 2));
    const upd = events(ann, 'room:online-update').find((u) => u.onlineCount === 2);
    assert.deepEqual(upd.onlineUsers.map((u) => u.userId).sort(), ['r-ann', 'r-bob']);

    r = await call(ann, 'room:info', { chatId: 'room-1' });
    assert.deepEqual(Object.keys(r.roomInfo).sort(), ['chatId', 'description', 'isActive', 'lastActivity', 'name',
      'onlineCount', 'participantCount']);
    assert.equal(r.roomInfo.name, 'Design');
    assert.equal(r.roomInfo.description, 'Design talk');
    assert.equal(r.roomInfo.participantCount, 2);
    assert.equal(r.roomInfo.onlineCount, 2);

    r = await call(ann, 'room:list', {});
    assert.equal(r.success, true);
    assert.deepEqual(r.rooms.map((x) => [x.chatId, x.name, x.participantCount]), [['room-1', 'Design', 2], ['room-2', 'room-2', 0]]);
    assert.match(r.rooms[0].lastActivity, ISO);

    r = await call(bob, 'room:online', { chatId: 'room-1' });
    assert.equal(r.success, true);
    assert.deepEqual(r.onlineUsers.map((u) => u.userId).sort(), ['r-ann', 'r-bob']);
    const o = r.onlineUsers.find((u) => u.userId === 'r-ann');
    assert.deepEqual(Object.keys(o).sort(), ['connectedAt', 'lastSeen', 'status', 'userId', 'username']);
    assert.equal(o.status, 'online');
    assert.match(o.connectedAt, ISO);

    /* refusals */
    assert.deepEqual(await call(out, 'join:chat', { chatId: 'room-1' }), { success: false, message: 'Chat not found or access denied' });
    assert.deepEqual(await call(out, 'room:info', { chatId: 'room-1' }), { success: false, message: 'Chat not found or access denied' });
    assert.deepEqual(await call(out, 'join:chat', {}), { success: false, message: 'Invalid request data' });
    assert.deepEqual(await call(out, 'join:chat', 'room-1'), { success: false, message: 'Invalid request data' });
    assert.deepEqual(await call(out, 'join:chat', { chatId: 'x'.repeat(200) }), { success: false, message: 'Invalid request data' });

    r = await call(bob, 'leave:chat', { chatId: 'room-1' });
    assert.deepEqual(r, { success: true, message: 'Left chat successfully' });
    assert.equal(events(bob, 'room:left')[0].chatId, 'room-1');
    await waitUntil('user:left', () => events(ann, 'user:left').length === 1);
    assert.equal(events(ann, 'user:left')[0].userId, 'r-bob');
    await waitUntil('room:online-update without bob', () => events(ann, 'room:online-update')
      .some((u, i, all) => i === all.length - 1 && u.onlineCount === 1));
  } finally {
    closeAll(ann, bob, out);
  }
});

test('messaging: message:send, message:new / message:sent, receipts, delivery status and stats, shared by both workers', async () => {
  const [ann, bob] = await spread(['m-ann', 'm-bob'], { claims: { chats: ['msg-1'] } });
  const out = await user('m-out', { claims: { chats: ['other'] } });
  try {
    await call(ann, 'join:chat', { chatId: 'msg-1' });
    await call(bob, 'join:chat', { chatId: 'msg-1' });
    const before = (await call(ann, 'message:stats', {})).stats;
    assert.deepEqual(Object.keys(before).sort(), ['activeTypingUsers', 'totalDelivered', 'totalRead', 'trackedMessages']);

    const r = await call(ann, 'message:send', { chatId: 'msg-1', content: 'Hello, world!', type: 'text' });
    assert.equal(r.success, true);
    assert.equal(r.message, 'Message sent successfully');
    const m = r.sentMessage;
    assert.deepEqual(Object.keys(m).sort(), ['chatId', 'content', 'createdAt', 'id', 'type', 'user', 'userId']);
    assert.equal(m.content, 'Hello, world!');
    assert.equal(m.type, 'text');
    assert.equal(m.chatId, 'msg-1');
    assert.equal(m.userId, 'm-ann');
    assert.match(m.createdAt, ISO);
    assert.deepEqual(m.user, { id: 'm-ann', username: 'name-m-ann' });
    assert.deepEqual(events(ann, 'message:sent'), [m]);
    await waitUntil('message:new at bob', () => events(bob, 'message:new').length === 1);
    assert.deepEqual(events(bob, 'message:new'), [m]);
    assert.deepEqual(events(ann, 'message:new'), [], 'the sender gets message:sent, not message:new');
    assert.deepEqual(events(out, 'message:new'), []);

    /* receipts from the other worker */
    assert.deepEqual(await call(bob, 'message:delivered', { messageId: m.id, chatId: 'msg-1' }), { success: true, message: 'Delivery confirmed' });
    assert.deepEqual(await call(bob, 'message:delivered', { messageId: m.id, chatId: 'msg-1' }), { success: true, message: 'Delivery confirmed' });
    assert.deepEqual(await call(bob, 'message:read', { messageId: m.id, chatId: 'msg-1' }), { success: true, message: 'Read confirmation recorded' });
    await waitUntil('the receipts at ann', () => events(ann, 'message:delivered').length === 1 && events(ann, 'message:read').length === 1);
    const d = events(ann, 'message:delivered')[0];
    assert.equal(d.messageId, m.id);
    assert.equal(d.chatId, 'msg-1');
    assert.equal(d.userId, 'm-bob');
    assert.match(d.deliveredAt, ISO);
    assert.match(events(ann, 'message:read')[0].readAt, ISO);
    assert.equal(events(bob, 'message:delivered').length, 1, 'broadcast once, to everyone in the chat');

    const st = await call(ann, 'message:delivery-status', { messageId: m.id });
    assert.equal(st.success, true);
    assert.deepEqual(Object.keys(st.status).sort(), ['deliveredTo', 'lastUpdate', 'messageId', 'readBy', 'sentAt']);
    assert.deepEqual(st.status.deliveredTo, ['m-bob']);
    assert.deepEqual(st.status.readBy, ['m-bob']);
    assert.equal(st.status.sentAt, m.createdAt);
    assert.match(st.status.lastUpdate, ISO);

    const after = (await call(bob, 'message:stats', {})).stats;
    assert.equal(after.trackedMessages, before.trackedMessages + 1);
    assert.equal(after.totalDelivered, before.totalDelivered + 1);
    assert.equal(after.totalRead, before.totalRead + 1);

    /* errors */
    assert.deepEqual(await call(out, 'message:send', { chatId: 'msg-1', content: 'hi' }), { success: false, message: 'Chat not found or access denied' });
    assert.deepEqual(await call(ann, 'message:send', { chatId: 'msg-1', content: '' }), { success: false, message: 'Invalid request data' });
    assert.deepEqual(await call(ann, 'message:send', { chatId: 'msg-1', content: 'x'.repeat(1501) }), { success: false, message: 'Invalid request data' });
    assert.deepEqual(await call(ann, 'message:send', { chatId: 'msg-1', content: 'x', type: 'no spaces' }), { success: false, message: 'Invalid request data' });
    assert.deepEqual(await call(out, 'message:delivery-status', { messageId: m.id }), { success: false, message: 'Message not found or access denied' });
    assert.deepEqual(await call(out, 'message:read', { messageId: m.id, chatId: 'msg-1' }), { success: false, message: 'Message not found or access denied' });
    assert.deepEqual(await call(ann, 'message:delivered', { messageId: 'nope', chatId: 'msg-1' }), { success: false, message: 'Message not found or access denied' });
  } finally {
    closeAll(ann, bob, out);
  }
});

test('typing: user:typing, message:typing-users across workers, and the expiry after 5 s without a refresh', async () => {
  const [ann, bob] = await spread(['t-ann', 't-bob'], { claims: { chats: ['typ-1'] } });
  try {
    await call(ann, 'join:chat', { chatId: 'typ-1' });
    await call(bob, 'join:chat', { chatId: 'typ-1' });
    assert.deepEqual(await call(ann, 'message:typing', { chatId: 'typ-1', isTyping: true }), { success: true, message: 'Typing status updated' });
    await waitUntil('user:typing at bob', () => events(bob, 'user:typing').length === 1);
    const t = events(bob, 'user:typing')[0];
    assert.equal(t.chatId, 'typ-1');
    assert.equal(t.userId, 't-ann');
    assert.equal(t.username, 'name-t-ann');
    assert.equal(t.isTyping, true);
    const list = await call(bob, 'message:typing-users', { chatId: 'typ-1' });
    assert.equal(list.success, true);
    assert.equal(list.typingUsers.length, 1);
    assert.deepEqual(Object.keys(list.typingUsers[0]).sort(), ['chatId', 'startedAt', 'userId', 'username']);
    assert.equal(list.typingUsers[0].userId, 't-ann');
    assert.match(list.typingUsers[0].startedAt, ISO);
    assert.ok((await call(bob, 'message:stats', {})).stats.activeTypingUsers >= 1);
    /* stop explicitly */
    await call(ann, 'message:typing', { chatId: 'typ-1', isTyping: false });
    await waitUntil('the stop', () => events(bob, 'user:typing').length === 2);
    assert.equal(events(bob, 'user:typing')[1].isTyping, false);
    assert.deepEqual((await call(bob, 'message:typing-users', { chatId: 'typ-1' })).typingUsers, []);
    /* expiry: no refresh for 5 s, then user:typing with isTyping false */
    const started = Date.now();
    await call(bob, 'message:typing', { chatId: 'typ-1', isTyping: true });
    await waitUntil('ann sees bob typing', () => events(ann, 'user:typing').length === 1);
    await waitUntil('the expiry', () => events(ann, 'user:typing').length === 2, 20000);
    const ended = events(ann, 'user:typing')[1];
    assert.equal(ended.userId, 't-bob');
    assert.equal(ended.isTyping, false);
    assert.equal(ended.expired, true);
    assert.ok(Date.now() - started >= 4900, 'not before the expiry');
    assert.deepEqual((await call(ann, 'message:typing-users', { chatId: 'typ-1' })).typingUsers, []);
  } finally {
    closeAll(ann, bob);
  }
});

test('rate limits: 100 messages and 10 typing events a minute per user, across the user\'s tabs', async () => {
  const [tab1, tab2] = await spread(['busy', 'busy'], { claims: { chats: ['rl-1'] } });
  const calm = await user('calm', { claims: { chats: ['rl-1'] } });
  try {
    const sends = [];
    for (let i = 0; i < 101; i++) {
      sends.push(call(i % 2 ? tab2 : tab1, 'message:send', { chatId: 'rl-1', content: `m${i}` }));
    }
    const res = await Promise.all(sends);
    assert.equal(res.filter((r) => r.success).length, 100);
    assert.deepEqual(res.filter((r) => !r.success), [{ success: false, message: 'Message rate limit exceeded. Please slow down.' }]);
    const typing = [];
    for (let i = 0; i < 11; i++) typing.push(call(i % 2 ? tab2 : tab1, 'message:typing', { chatId: 'rl-1', isTyping: i % 2 === 0 }));
    const tr = await Promise.all(typing);
    assert.equal(tr.filter((r) => r.success).length, 10);
    assert.deepEqual(tr.filter((r) => !r.success), [{ success: false, message: 'Typing rate limit exceeded. Please slow down.' }]);
    assert.equal((await call(calm, 'message:send', { chatId: 'rl-1', content: 'fine' })).success, true, 'another user is not limited');
  } finally {
    closeAll(tab1, tab2, calm);
  }
});

test('the connection limit: 5 attempts per address in 5 minutes, then refused', async () => {
  const addr = address();
  const socks = [];
  try {
    for (let i = 0; i < 5; i++) {
      const s = await user(`cl-${i}`, { addr });
      socks.push(s);
      s.close();
    }
    const over = io(`${emitd.url}/chat`, { forceNew: true, reconnection: false, transports: ['polling'],
      agent: new http.Agent({ localAddress: addr }), auth: { token: token('cl-x') } });
    socks.push(over);
    const e = await connectError(over);
    assert.equal(e.message, 'Too many connection attempts. Please try again later.');
    assert.ok(e.data.retryAfter > 800 && e.data.retryAfter <= 900, `retryAfter ${e.data.retryAfter}`);
    socks.push(await user('cl-other'));   /* another address goes on */
  } finally {
    closeAll(socks);
  }
});

test('presence: status, online users, one user\'s status, stats, and the user:* broadcasts', async () => {
  const [ann, bob] = await spread(['p-ann', 'p-bob']);
  try {
    const joinedAt = events(ann, 'user:online').length;
    const cid = await user('p-cid', { claims: { email: 'cid@example.com' } });
    await waitUntil('user:online for p-cid', () => events(ann, 'user:online').slice(joinedAt).some((u) => u.userId === 'p-cid'));
    const on = events(bob, 'user:online').find((u) => u.userId === 'p-cid') || events(ann, 'user:online').find((u) => u.userId === 'p-cid');
    assert.equal(on.username, 'name-p-cid');
    assert.equal(on.status, 'online');
    await waitUntil('users:online', () => events(bob, 'users:online').some((x) => x.users.some((u) => u.userId === 'p-cid')));

    assert.deepEqual(await call(ann, 'presence:update-status', { status: 'away' }), { success: true, message: 'Status updated successfully' });
    await waitUntil('user:status-changed at bob', () => events(bob, 'user:status-changed').some((x) => x.userId === 'p-ann'));
    const ch = events(bob, 'user:status-changed').find((x) => x.userId === 'p-ann');
    assert.equal(ch.status, 'away');
    assert.equal(ch.previousStatus, 'online');
    assert.deepEqual(await call(ann, 'presence:update-status', { status: 'sleeping' }), { success: false, message: 'Invalid request data' });

    let r = await call(bob, 'presence:online-users', {});
    assert.equal(r.success, true);
    const ids = r.users.map((u) => u.userId);
    for (const id of ['p-ann', 'p-bob', 'p-cid']) assert.ok(ids.includes(id), id);
    assert.equal(r.users.find((u) => u.userId === 'p-ann').status, 'away');

    r = await call(cid, 'presence:user-status', { userId: 'p-cid' });
    assert.deepEqual(Object.keys(r.presence).sort(), ['connectedAt', 'email', 'ipAddress', 'lastSeen', 'socketId', 'status',
      'userAgent', 'userId', 'username']);
    assert.equal(r.presence.email, 'cid@example.com');
    assert.equal(r.presence.socketId, cid.id);
    assert.match(r.presence.ipAddress, /^127\.0\./);
    assert.equal(typeof r.presence.userAgent, 'string');
    r = await call(bob, 'presence:user-status', { userId: 'p-cid' });
    assert.equal(r.presence.status, 'online');
    assert.equal(r.presence.ipAddress, undefined, 'another user\'s address is not shown');
    assert.deepEqual(await call(bob, 'presence:user-status', { userId: 'nobody-here' }), { success: false, message: 'User not found' });

    r = await call(bob, 'presence:stats', {});
    assert.deepEqual(Object.keys(r.stats).sort(), ['awayUsers', 'busyUsers', 'offlineUsers', 'onlineUsers', 'totalUsers']);
    assert.ok(r.stats.awayUsers >= 1 && r.stats.onlineUsers >= 2);

    cid.close();
    await waitUntil('user:offline for p-cid', () => events(ann, 'user:offline').some((u) => u.userId === 'p-cid'));
    assert.match(events(ann, 'user:offline').find((u) => u.userId === 'p-cid').lastSeen, ISO);
  } finally {
    closeAll(ann, bob);
  }
});

test('recovery sessions: create-session, recover on a new socket with the queued messages, session-info, stats', async () => {
  const ann = await user('s-ann', { claims: { chats: ['rec-1', 'rec-2'] } });
  const bob = await user('s-bob', { claims: { chats: ['rec-1'] } });
  let back;
  try {
    await call(ann, 'join:chat', { chatId: 'rec-1' });
    await call(ann, 'join:chat', { chatId: 'rec-2' });
    await call(bob, 'join:chat', { chatId: 'rec-1' });
    const r = await call(ann, 'connection:create-session', {});
    assert.equal(r.success, true);
    assert.match(r.recoveryToken, /^[0-9a-f]{48}$/);
    const tokEv = events(ann, 'connection:recovery-token')[0];
    assert.equal(tokEv.recoveryToken, r.recoveryToken);
    const info = await call(ann, 'connection:session-info', {});
    assert.equal(info.sessionInfo.recoveryToken, r.recoveryToken);
    assert.deepEqual(info.sessionInfo.rooms.sort(), ['rec-1', 'rec-2']);

    ann.close();
    await delay(200);
    const sent = await call(bob, 'message:send', { chatId: 'rec-1', content: 'while you were away' });
    back = await user('s-ann', { claims: { chats: ['rec-1', 'rec-2'] } });
    const rec = await call(back, 'connection:recover', { recoveryToken: r.recoveryToken });
    assert.equal(rec.success, true, JSON.stringify(rec));
    assert.equal(rec.message, 'Connection recovered successfully');
    assert.deepEqual(Object.keys(rec.session).sort(), ['connectedAt', 'lastActivity', 'messageQueue', 'recoveryToken', 'rooms',
      'socketId', 'userId']);
    assert.equal(rec.session.userId, 's-ann');
    assert.equal(rec.session.socketId, back.id);
    assert.deepEqual(rec.session.rooms.sort(), ['rec-1', 'rec-2']);
    assert.equal(rec.session.recoveryToken, r.recoveryToken);
    assert.match(rec.session.connectedAt, ISO);
    const q = rec.session.messageQueue.filter((e) => e.event === 'message:new');
    assert.equal(q.length, 1, JSON.stringify(rec.session.messageQueue));
    assert.deepEqual(q[0].args[0], sent.sentMessage);
    assert.equal(events(back, 'connection:recovered').length, 1);
    assert.equal(events(back, 'connection:queued-messages')[0].count, rec.session.messageQueue.length);
    /* it is in the chats again */
    await call(bob, 'message:send', { chatId: 'rec-1', content: 'welcome back' });
    await waitUntil('the next message', () => events(back, 'message:new').some((x) => x.content === 'welcome back'));

    const st = await call(back, 'connection:stats', {});
    assert.deepEqual(Object.keys(st.stats).sort(), ['activeSessions', 'averageSessionAge', 'queuedMessages', 'recoveryTokens']);
    assert.ok(st.stats.activeSessions >= 1);
    assert.equal(typeof st.stats.averageSessionAge, 'number');
    /* a token can be used once; another user's is refused */
    const thief = await user('s-eve', { claims: { chats: ['rec-1', 'rec-2'] } });
    assert.deepEqual(await call(thief, 'connection:recover', { recoveryToken: r.recoveryToken }),
      { success: false, message: 'Invalid or expired recovery token' });
    assert.deepEqual(await call(thief, 'connection:recover', {}), { success: false, message: 'Invalid request data' });
    thief.close();
  } finally {
    closeAll(ann, bob, back);
  }
});

test('monitoring: only for monitors; metrics, events, stats and health in the seed\'s shapes', async () => {
  const plain = await user('mo-user');
  const admin = await user('mo-admin', { claims: { role: 'admin' } });
  try {
    for (const ev of ['monitoring:metrics', 'monitoring:events', 'monitoring:stats', 'monitoring:health']) {
      assert.deepEqual(await call(plain, ev, {}), { success: false, message: 'Access denied' }, ev);
    }
    let r = await call(admin, 'monitoring:metrics', {});
    for (const k of ['totalConnections', 'activeConnections', 'failedConnections', 'averageConnectionDuration',
      'peakConnections', 'connectionsPerMinute', 'lastReset']) assert.ok(k in r.metrics, k);
    assert.ok(r.metrics.activeConnections >= 2);
    assert.ok(r.metrics.failedConnections >= 1, 'the refused attempts of the tests before');
    assert.match(r.metrics.lastReset, ISO);
    r = await call(admin, 'monitoring:events', { limit: 5, type: 'connect', userId: 'mo-user' });
    assert.equal(r.success, true);
    assert.equal(r.events.length, 1);
    const e = r.events[0];
    assert.equal(e.type, 'connect');
    assert.equal(e.socketId, plain.id);
    assert.equal(e.userId, 'mo-user');
    assert.match(e.ipAddress, /^127\.0\./);
    assert.match(e.timestamp, ISO);
    assert.equal(typeof e.details, 'object');
    r = await call(admin, 'monitoring:stats', {});
    assert.deepEqual(Object.keys(r.stats).sort(), ['errorRate', 'metrics', 'recentEvents', 'topIPs', 'topUserAgents']);
    assert.ok(r.stats.topIPs.every((x) => typeof x.ip === 'string' && Number.isInteger(x.count)));
    assert.ok(r.stats.recentEvents.length > 0);
    r = await call(admin, 'monitoring:health', {});
    assert.ok(['healthy', 'warning', 'critical'].includes(r.health.status));
    assert.ok(Array.isArray(r.health.issues) && Array.isArray(r.health.recommendations));
    assert.equal(r.health.issues.length, r.health.recommendations.length);
  } finally {
    closeAll(plain, admin);
  }
});

test('the seed\'s client example, as it stands: joins, sends, types', async () => {
  const other = await user('ex-other', { claims: { chats: ['chat-uuid'] } });
  const seed = runSeedClient('chat.client.mjs', [['ws://localhost:3001/chat', `${emitd.url.replace('http', 'ws')}/chat`],
    ['your-jwt-token', token('ex-user', { chats: ['chat-uuid'] })]]);
  try {
    await call(other, 'join:chat', { chatId: 'chat-uuid' });
    await seed.waitLine(/^Connected to WebSocket$/m);
    await waitUntil('the example\'s message', () => events(other, 'message:new').length === 1);
    assert.equal(events(other, 'message:new')[0].content, 'Hello, world!');
    assert.equal(events(other, 'message:new')[0].userId, 'ex-user');
    await waitUntil('its typing', () => events(other, 'user:typing').some((t) => t.userId === 'ex-user' && t.isTyping));
    /* the example hears the other user too */
    await call(other, 'message:send', { chatId: 'chat-uuid', content: 'hi back' });
    await seed.waitLine(/New message: \{[^]*content: 'hi back'/);
  } finally {
    closeAll(other);
    await seed.stop();
  }
});

test('emitd exits cleanly on SIGTERM', async () => {
  assert.deepEqual(await stopAndCheck(emitd), []);
});

test('chat access from the backend (vars.access_url): allowed, refused, and room:list', async () => {
  const port = await freePort();
  const asked = [];
  const backend = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const q = JSON.parse(body);
      asked.push(q);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (q.chatId === undefined) res.end(JSON.stringify({ chats: [{ chatId: 'b-1', name: 'Backend room' }] }));
      else res.end(JSON.stringify(q.chatId === 'b-1' ? { allowed: true, name: 'Backend room', description: 'From the API' } : { allowed: false }));
    });
  });
  await new Promise((resolve) => backend.listen(port, '127.0.0.1', resolve));
  const d = await startExample('chat', { vars: { access_url: `http://127.0.0.1:${port}/access` } });
  let s;
  try {
    s = await user('b-user', { target: d, claims: { chats: [] } });
    const r = await call(s, 'join:chat', { chatId: 'b-1' });
    assert.equal(r.success, true);
    assert.deepEqual(await call(s, 'join:chat', { chatId: 'b-2' }), { success: false, message: 'Chat not found or access denied' });
    const info = await call(s, 'room:info', { chatId: 'b-1' });
    assert.equal(info.roomInfo.name, 'Backend room');
    assert.equal(info.roomInfo.description, 'From the API');
    assert.deepEqual((await call(s, 'room:list', {})).rooms.map((x) => [x.chatId, x.name]), [['b-1', 'Backend room']]);
    assert.deepEqual(asked.filter((q) => q.chatId === 'b-1'), [{ userId: 'b-user', chatId: 'b-1' }], 'the answer was kept');
  } finally {
    closeAll(s);
    assert.deepEqual(await stopAndCheck(d), []);
    backend.close();
  }
});
