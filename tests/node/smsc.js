// An SMPP 3.4 SMSC simulator for Centralino's tests (npm `smpp` 0.5).
//
//   node smsc.js SMPP_PORT CONTROL_PORT [SYSTEM_ID] [PASSWORD]
//
// It accepts bind_transceiver with the given credentials, answers enquire_link,
// acknowledges every submit_sm with a message id and, when a receipt is asked
// for (registered_delivery & 1), sends a delivery receipt (deliver_sm with
// esm_class 0x04): DELIVRD, or UNDELIV for destinations starting with 39000;
// for destinations starting with 39111 the receipt is in TLVs only.
// A small HTTP API on CONTROL_PORT drives and inspects it:
//   GET  /submitted          every submit_sm received, decoded by this library
//   POST /mo {from,to,text[,payload]}  a mobile-originated message to every bound
//            session (payload: in the message_payload TLV, short_message empty)
//            {from,to,parts:[[seq,text],...]}  the same as concatenated parts
//            {from_prefix,to,text,count}  COUNT messages from numbers
//            FROM_PREFIX + 7 digits to the first bound session (benchmarks)
//   POST /unbind             unbind every session (answered), then close it
//   POST /drop               cut every connection (a network failure)
// It prints "ready" once both ports listen.
'use strict';
const http = require('http');
const smpp = require('smpp');

const [port, controlPort] = [Number(process.argv[2]), Number(process.argv[3])];
const systemId = process.argv[4] || 'centralino';
const password = process.argv[5] || 'secret';
const submitted = [];
const sessions = new Set();
let counter = 0;

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getUTCFullYear() % 100)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}`;
}

const server = smpp.createServer({ debug: false }, (session) => {
  let bound = false;
  session.on('error', () => {});
  session.on('close', () => sessions.delete(session));
  session.on('bind_transceiver', (pdu) => {
    if (pdu.system_id !== systemId || pdu.password !== password) {
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    bound = true;
    sessions.add(session);
    session.send(pdu.response({ system_id: 'simsmsc' }));
  });
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => { session.send(pdu.response()); session.close(); });
  session.on('deliver_sm_resp', () => {});
  session.on('submit_sm', (pdu) => {
    if (!bound) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    counter += 1;
    const id = `sim${counter}`;
    const sm = pdu.short_message || {};
    const udh = sm.udh && sm.udh[0] ? Array.from(sm.udh[0]) : [];
    const record = {
      id,
      source: pdu.source_addr,
      destination: pdu.destination_addr,
      destination_ton: pdu.dest_addr_ton,
      destination_npi: pdu.dest_addr_npi,
      source_ton: pdu.source_addr_ton,
      source_npi: pdu.source_addr_npi,
      service_type: pdu.service_type,
      protocol_id: pdu.protocol_id,
      priority_flag: pdu.priority_flag,
      schedule_delivery_time: pdu.schedule_delivery_time,
      validity_period: pdu.validity_period,
      replace_if_present_flag: pdu.replace_if_present_flag,
      sm_default_msg_id: pdu.sm_default_msg_id,
      data_coding: pdu.data_coding,
      esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery,
      udh,
      text: typeof sm.message === 'string' ? sm.message : String(sm.message || ''),
    };
    submitted.push(record);
    session.send(pdu.response({ message_id: id }));
    if (pdu.registered_delivery & 1) {
      const failed = String(pdu.destination_addr).replace(/^\+/, '').startsWith('39000');
      const stat = failed ? 'UNDELIV' : 'DELIVRD';
      const err = failed ? '001' : '000';
      const now = stamp(new Date());
      setTimeout(() => {
        // Destinations starting with 39111 get a receipt in TLVs only (empty text).
        const tlvOnly = String(pdu.destination_addr).replace(/^\+/, '').startsWith('39111');
        session.deliver_sm({
          source_addr: pdu.destination_addr,
          destination_addr: pdu.source_addr,
          esm_class: 0x04,
          short_message: tlvOnly ? '' : `id:${id} sub:001 dlvr:${failed ? '000' : '001'} submit date:${now} done date:${now} stat:${stat} err:${err} text:`,
          receipted_message_id: id,
          message_state: failed ? 5 : 2,
        });
      }, 30);
    }
  });
});

server.listen(port, '127.0.0.1');

const control = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => { body += c; });
  req.on('end', () => {
    const reply = (status, value) => {
      const text = JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method === 'GET' && req.url === '/submitted') return reply(200, submitted);
    if (req.method === 'POST' && req.url === '/unbind') {
      // An orderly goodbye (maintenance): unbind, wait for the answer, close.
      const count = sessions.size;
      for (const s of sessions) {
        s.unbind(() => { s.close(); });
      }
      sessions.clear();
      return reply(200, { unbound: count });
    }
    if (req.method === 'POST' && req.url === '/drop') {
      for (const s of sessions) s.destroy();
      sessions.clear();
      return reply(200, { dropped: true });
    }
    if (req.method === 'POST' && req.url === '/mo') {
      let mo;
      try { mo = JSON.parse(body); } catch (e) { return reply(400, { error: 'json' }); }
      if (sessions.size === 0) return reply(503, { error: 'no bound session' });
      // Long numbers go out as international (TON 1) without '+', as SMSCs write them.
      const from = String(mo.from || '');
      const intl = /^\+?\d{8,}$/.test(from);
      const addr = { source_addr: intl ? from.replace(/^\+/, '') : from, source_addr_ton: intl ? 1 : 0 };
      if (Number.isInteger(mo.count)) {
        // Many messages from numbers `from_prefix` + 7 digits (benchmarks).
        const s = sessions.values().next().value;
        for (let i = 0; i < mo.count; i += 1) {
          s.deliver_sm({
            source_addr: `${mo.from_prefix}${String(i).padStart(7, '0')}`, source_addr_ton: 1,
            destination_addr: mo.to, esm_class: 0, short_message: { message: `${mo.text} ${i}` },
          });
        }
        return reply(200, { sent: mo.count });
      }
      for (const s of sessions) {
        if (Array.isArray(mo.parts)) {
          // A concatenated message, parts sent in the order given (8-bit reference 42).
          const total = mo.total || mo.parts.length;
          for (const [seq, text] of mo.parts) {
            s.deliver_sm({
              ...addr, destination_addr: mo.to, esm_class: 0,
              short_message: { udh: Buffer.from([5, 0, 3, 42, total, seq]), message: text },
            });
          }
        } else {
          const body = mo.payload ? { message_payload: mo.text } : { short_message: { message: mo.text } };
          s.deliver_sm({ ...addr, destination_addr: mo.to, esm_class: 0, ...body });
        }
      }
      return reply(200, { sent: sessions.size });
    }
    return reply(404, { error: 'unknown' });
  });
});

control.listen(controlPort, '127.0.0.1', () => console.log('ready'));
