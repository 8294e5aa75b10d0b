// Drives Centralino's browser application in headless Chromium (Debian's,
// through playwright-core), as an agent and a supervisor would, through a
// TCP proxy that can cut the browser's network.
//
//   node desktop.js <server host:port>
//
// A line protocol with the Rust test that runs it: commands on stdin, one
// answer line each on stdout (`OK …`), failures on stderr with exit 1.
//   login <user> <password…>  log the agent in (page 1), enable sound, go available
//   offer <id>                 wait for the offer; check countdown and ring; accept,
//                              read the timeline, complete with a disposition
//                              → OK <ms from the command to the offer in the DOM>
//   open                       show the login screen (page 1)
//   admin <user> <password…>   log an admin in on a page of their own, on /admin
//   reply <id> <text…>         accept the offer, open it, reply with the text,
//                              complete → OK <SMS segments shown, or ->
//   twotabs                    a second tab of the agent takes the work, the first
//                              says so; "use here" takes it back
//   counter <site> <name>      open a desk counter
//   ticket <id>                accept the desk ticket's offer, recall it, start
//                              serving, complete → OK <label> <states seen>
//   wall <user> <password…>   log a supervisor in on a second page, on /wall
//   waiting <queue> <n>        wait until the wallboard shows n waiting → OK <ms>
//   supervise <agent>          the supervisor sets the agent not ready from the
//                              wallboard; both screens show it → OK <ms>
//   cut                        drop the browser's connections, refuse new ones
//   restore                    let it connect again
//   counts                     → OK <snapshots received> <streams opened>
//   shown <n>                  wait for n offers in the DOM → OK <JSON [{id, at}]>,
//                              `at` from the page's Date.now() (this machine's clock)
//   seen <id>                  wait for the offer (after a cut), shown once; no
//                              event received twice → OK <events applied>
//                              <snapshots received> <streams opened>
//   refused                    the agent opens /admin (sent back to /desk); the
//                              admin API answers its session → OK <grpc-status> <message>
//   axe <name>                 axe-core scan of the page now shown; screenshot
//                              into $CENTRALINO_SCREENSHOTS (if set) as <name>.png
//   quit
"use strict";
const fs = require("fs");
const net = require("net");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const [target] = process.argv.slice(2);
if (!target) {
  console.error("usage: node desktop.js <server host:port>");
  process.exit(2);
}
const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.CENTRALINO_SCREENSHOTS || "";
const WAIT = 20000;

// The proxy: the browser talks to it. `cut` drops every connection and
// refuses new ones (the browser's requests fail, as on a lost network; the
// server sees the desk's stream end) until `restore`.
let cut = false;
const pairs = new Set();
function pipe(client) {
  const upstream = net.connect(targetPort, targetHost);
  const pair = { client, upstream };
  pairs.add(pair);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => {
    pairs.delete(pair);
    client.destroy();
    upstream.destroy();
  };
  client.on("error", end);
  upstream.on("error", end);
  client.on("close", end);
  upstream.on("close", end);
}
const proxy = net.createServer((client) => {
  if (cut) {
    client.destroy();
  } else {
    pipe(client);
  }
});

function setCut(on) {
  cut = on;
  if (on) {
    for (const { client, upstream } of [...pairs]) {
      client.destroy();
      upstream.destroy();
    }
  }
}

function fail(why) {
  console.error(why);
  process.exit(1);
}

(async () => {
  await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
  const base = `http://127.0.0.1:${proxy.address().port}`;
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "it-IT" });
  const consoleErrors = [];
  const consoleLines = [];
  const allPages = [];
  const watch = (page) => {
    allPages.push(page);
    page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
    page.on("console", (m) => consoleLines.push(`console ${m.type()}: ${m.text()}`));
  };
  const agent = await context.newPage();
  watch(agent);
  let wall = null;
  let current = agent;

  const login = async (page, user, password) => {
    await page.goto(`${base}/`);
    await page.fill('[data-testid="login-user"]', user);
    await page.fill('[data-testid="login-password"]', password);
    await page.click('[data-testid="login-submit"]');
  };

  // axe-core (WCAG 2.1 A and AA) on the page as shown: fails on a serious or
  // critical violation; a screenshot into $CENTRALINO_SCREENSHOTS if set.
  const scan = async (page, name) => {
    await page.evaluate(fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
    const result = await page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
    );
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    if (bad.length) {
      fail(`axe on ${name}: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} node(s)`).join("; ")}`);
    }
    if (shots) {
      fs.mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: path.join(shots, `${name}.png`) });
    }
    return String(result.violations.length);
  };

  const commands = {
    async login(user, ...password) {
      await login(agent, user, password.join(" "));
      await agent.waitForURL(/\/desk$/, { timeout: WAIT });
      await agent.waitForSelector('[data-testid="connection"][data-state="connected"]', { timeout: WAIT });
      await agent.click('[data-testid="enable-sound"]');
      await agent.click('[data-testid="presence-available"]');
      await agent.waitForSelector('[data-testid="status"][data-status="idle"]', { timeout: WAIT });
      current = agent;
      return "available";
    },
    async offer(id) {
      const asked = Date.now();
      const row = `[data-testid="offer"][data-interaction="${id}"]`;
      await agent.waitForSelector(row, { timeout: WAIT });
      const shownAfter = Date.now() - asked;
      const countdown = await agent.textContent(`${row} [data-testid="countdown"]`);
      if (!countdown || !/\d/.test(countdown)) fail(`no countdown on the offer: ${countdown}`);
      const ringing = await agent.evaluate(() => window.__centralinoRinging === true);
      if (!ringing) fail("the offer does not ring");
      const title = await agent.title();
      if (!/^\(\d+\)/.test(title)) fail(`no badge in the tab title: ${title}`);
      await scan(agent, "desktop-offer");
      await agent.click(`${row} [data-testid="accept"]`);
      const heldRow = `[data-testid="held"][data-interaction="${id}"]`;
      await agent.waitForSelector(heldRow, { timeout: WAIT });
      await agent.click(`${heldRow} [data-testid="select"]`);
      await agent.waitForSelector('[data-testid="timeline"]', { timeout: WAIT });
      await scan(agent, "desktop-work");
      await agent.selectOption('[data-testid="disposition"]', "resolved");
      await agent.click('[data-testid="complete"]');
      await agent.waitForSelector(heldRow, { state: "detached", timeout: WAIT });
      return String(shownAfter);
    },
    async reply(id, ...words) {
      const row = `[data-testid="offer"][data-interaction="${id}"]`;
      await agent.waitForSelector(row, { timeout: WAIT });
      await agent.click(`${row} [data-testid="accept"]`);
      const heldRow = `[data-testid="held"][data-interaction="${id}"]`;
      await agent.waitForSelector(heldRow, { timeout: WAIT });
      await agent.click(`${heldRow} [data-testid="select"]`);
      await agent.waitForSelector('[data-testid="timeline-item"]', { timeout: WAIT });
      await agent.fill('[data-testid="reply-body"]', words.join(" "));
      const counter = await agent.$('[data-testid="sms-segments"]');
      const segments = counter ? await counter.getAttribute("data-segments") : "-";
      await scan(agent, counter ? "desktop-sms" : "desktop-email");
      await agent.click('[data-testid="reply-send"]');
      // Sent: the composer empties; refused: the alert says why.
      await agent.waitForFunction(
        () =>
          document.querySelector('[data-testid="reply-body"]').value === "" ||
          document.querySelector('[data-testid="alert"]').textContent.trim() !== "",
        null,
        { timeout: WAIT },
      );
      const refused = (await agent.textContent('[data-testid="alert"]')).trim();
      if (refused) fail(`the reply was refused: ${refused}`);
      await agent.selectOption('[data-testid="disposition"]', "resolved");
      await agent.click('[data-testid="complete"]');
      await agent.waitForSelector(heldRow, { state: "detached", timeout: WAIT });
      return segments;
    },
    async twotabs() {
      // A second tab of the same agent takes the work; the first says so
      // and takes it back on "use here" (neither takes it back by itself).
      const second = await context.newPage();
      watch(second);
      await second.goto(`${base}/desk`);
      await second.waitForSelector('[data-testid="connection"][data-state="connected"]', { timeout: WAIT });
      await agent.waitForSelector('[data-testid="connection"][data-state="elsewhere"]', { timeout: WAIT });
      await agent.click('[data-testid="use-here"]');
      await agent.waitForSelector('[data-testid="connection"][data-state="connected"]', { timeout: WAIT });
      await second.waitForSelector('[data-testid="connection"][data-state="elsewhere"]', { timeout: WAIT });
      await second.close();
      return "ok";
    },
    async counter(site, name) {
      await agent.fill("#counter-site", site);
      await agent.fill("#counter-name", name);
      await agent.click('[data-testid="open-counter"]');
      await agent.waitForSelector('[data-testid="counter-open"]', { timeout: WAIT });
      return "open";
    },
    async ticket(id) {
      const row = `[data-testid="offer"][data-interaction="${id}"]`;
      await agent.waitForSelector(row, { timeout: WAIT });
      await agent.click(`${row} [data-testid="accept"]`);
      const heldRow = `[data-testid="held"][data-interaction="${id}"]`;
      await agent.waitForSelector(heldRow, { timeout: WAIT });
      await agent.click(`${heldRow} [data-testid="select"]`);
      const label = (await agent.textContent('[data-testid="ticket-label"]', { timeout: WAIT })).trim();
      await scan(agent, "desktop-desk");
      const states = [];
      for (const [button, want] of [
        ["desk-recall", /called/],
        ["desk-start", /serving/],
      ]) {
        await agent.click(`[data-testid="${button}"]`);
        await agent.waitForFunction(
          (re) => new RegExp(re).test(document.querySelector('[data-testid="ticket-state"]')?.textContent || ""),
          want.source,
          { timeout: WAIT },
        );
        states.push((await agent.textContent('[data-testid="ticket-state"]')).replace(/[·\s]+/g, " ").trim());
      }
      await agent.selectOption('[data-testid="disposition"]', "resolved");
      await agent.click('[data-testid="complete"]');
      await agent.waitForSelector(heldRow, { state: "detached", timeout: WAIT });
      return `${label} ${states.join(" / ")}`;
    },
    async wall(user, ...password) {
      // The supervisor's own browser (its own cookies).
      const own = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "it-IT" });
      wall = await own.newPage();
      watch(wall);
      await login(wall, user, password.join(" "));
      await wall.waitForURL(/\/wall$/, { timeout: WAIT });
      await wall.waitForSelector('[data-testid="queue-row"]', { timeout: WAIT });
      current = wall;
      return "wall";
    },
    async waiting(queue, n) {
      if (!wall) fail("no wallboard open");
      const asked = Date.now();
      await wall.waitForFunction(
        ([q, want]) => {
          const cell = document.querySelector(`[data-testid="queue-row"][data-queue="${q}"] [data-testid="waiting"]`);
          return cell && cell.textContent.trim() === want;
        },
        [queue, n],
        { timeout: WAIT },
      );
      return String(Date.now() - asked);
    },
    async open() {
      await agent.goto(`${base}/`);
      await agent.waitForSelector('[data-testid="login-user"]', { timeout: WAIT });
      current = agent;
      return "login";
    },
    async admin(user, ...password) {
      const own = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: "it-IT" });
      const page = await own.newPage();
      watch(page);
      await login(page, user, password.join(" "));
      await page.waitForURL((u) => !u.pathname.endsWith("/login") && u.pathname !== "/", { timeout: WAIT });
      await page.goto(`${base}/admin`);
      await page.waitForSelector('[data-testid="user-row"]', { timeout: WAIT });
      current = page;
      return "admin";
    },
    async supervise(name) {
      if (!wall) fail("no wallboard open");
      const asked = Date.now();
      await wall.click(`[data-testid="agent-row"][data-agent="${name}"] [data-testid="agent-not-ready"]`);
      await agent.waitForSelector('[data-testid="status"][data-status="not-ready"]', { timeout: WAIT });
      await wall.waitForSelector(`[data-testid="agent-row"][data-agent="${name}"][data-status="not-ready"]`, {
        timeout: WAIT,
      });
      return String(Date.now() - asked);
    },
    async cut() {
      setCut(true);
      return "cut";
    },
    async restore() {
      setCut(false);
      return "restored";
    },
    async seen(id) {
      const row = `[data-testid="offer"][data-interaction="${id}"]`;
      await agent.waitForSelector(row, { timeout: 60000 });
      const rows = await agent.$$(row);
      if (rows.length !== 1) fail(`the offer is shown ${rows.length} times`);
      const state = await agent.evaluate(() => ({
        received: [...window.__centralinoReceived.entries()].filter(([, n]) => n !== 1),
        applied: window.__centralinoApplied.size,
        snapshots: window.__centralinoSnapshots,
        connects: window.__centralinoConnects,
      }));
      if (state.received.length) fail(`events received twice: ${JSON.stringify(state.received)}`);
      return `${state.applied} ${state.snapshots} ${state.connects}`;
    },
    async shown(n) {
      // When each of the first n offers entered the DOM (ms since the epoch).
      await agent.waitForFunction((want) => window.__centralinoOfferShown.length >= want, Number(n), {
        timeout: 120000,
      });
      return JSON.stringify(await agent.evaluate(() => window.__centralinoOfferShown));
    },
    async counts() {
      const state = await agent.evaluate(() => `${window.__centralinoSnapshots} ${window.__centralinoConnects}`);
      return state;
    },
    async refused() {
      // The application sends an agent away from the admin screen…
      await agent.goto(`${base}/admin`);
      await agent.waitForURL(/\/desk$/, { timeout: WAIT });
      // …and the server refuses the admin API to the agent's session
      // (a gRPC-web call as the app makes it: cookie and Origin by the browser).
      const answer = await agent.evaluate(async () => {
        const r = await fetch("/centralino.v1.UserAdminService/ListUsers", {
          method: "POST",
          headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
          body: new Uint8Array([0, 0, 0, 0, 0]),
        });
        return `${r.headers.get("grpc-status")} ${decodeURIComponent(r.headers.get("grpc-message") || "")}`;
      });
      await agent.waitForSelector('[data-testid="connection"][data-state="connected"]', { timeout: WAIT });
      return answer;
    },
    async axe(name) {
      return scan(current, name);
    },
    async show(which) {
      current = which === "wall" ? wall : agent;
      await current.bringToFront();
      return which;
    },
  };

  console.log("READY");
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (!cmd) continue;
    if (cmd === "quit") break;
    const run = commands[cmd];
    if (!run) fail(`unknown command: ${cmd}`);
    try {
      const answer = await run(...args);
      console.log(`OK ${answer}`);
    } catch (e) {
      const pages = [];
      for (const p of allPages) {
        const alert = await p.textContent('[data-testid="alert"]').catch(() => "");
        pages.push(`page ${p.url()}: alert ${JSON.stringify((alert || "").trim())}`);
      }
      fail(`${cmd} ${args.join(" ")}: ${e.message}\n${pages.join("\n")}\n${consoleLines.slice(-20).join("\n")}`);
    }
  }
  if (consoleErrors.length) fail(consoleErrors.join("\n"));
  await browser.close();
  proxy.close();
  process.exit(0);
})().catch((e) => fail(e.stack || e.message));
