// The farm dashboard's only script, and an optional one: every page works
// without it. It follows a running build's log into the target page, and
// reloads a page's <main> every few seconds while something on it is still
// in progress.
"use strict";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// followLog streams GET /api/targets/{id}/log?follow=1 (the whole log, then
// what the build writes until it ends) into the <pre>, then shows the
// target's final state. It tries again while the target is still pending or
// building (no log yet, or a dropped connection).
async function followLog(pre) {
	const status = document.getElementById("log-status");
	let wait = 1000;
	for (;;) {
		try {
			const resp = await fetch(pre.dataset.follow, { cache: "no-store" });
			if (resp.ok) {
				showState(); // a log appeared: the build has likely started
				await stream(resp.body, pre);
				wait = 1000;
			}
		} catch (e) {
			// the build's state decides what happens next
		}
		if (!(await showState())) {
			status.textContent = "";
			try {
				await reloadMain(); // the build's times, and its whole log
			} catch (e) {
				// the page keeps what it has
			}
			return;
		}
		await sleep(wait);
		wait = Math.min(wait * 2, 5000);
	}
}

// showState puts the target's current state and reason on the page, and
// returns whether the build may still change them.
async function showState() {
	const badge = document.getElementById("state");
	try {
		const resp = await fetch(badge.dataset.target, { cache: "no-store" });
		if (!resp.ok) {
			return true;
		}
		const t = await resp.json();
		badge.textContent = t.state;
		badge.className = "badge s-" + t.state;
		document.getElementById("reason").textContent = t.reason || "";
		return t.state === "pending" || t.state === "building";
	} catch (e) {
		return true; // the builder is unreachable: keep trying
	}
}

// stream replaces the <pre>'s text with a response body as it arrives,
// keeping the page scrolled to the end if it was there.
async function stream(body, pre) {
	const reader = body.getReader();
	const decoder = new TextDecoder();
	let first = true;
	for (;;) {
		const { done, value } = await reader.read();
		const text = done ? decoder.decode() : decoder.decode(value, { stream: true });
		if (first && (text !== "" || done)) {
			pre.textContent = "";
			first = false;
		}
		if (text !== "") {
			const atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
			pre.appendChild(document.createTextNode(text));
			if (atEnd) {
				window.scrollTo(0, document.body.scrollHeight);
			}
		}
		if (done) {
			pre.normalize();
			return;
		}
	}
}

// reloadMain replaces the page's <main> with the server's current one. It
// returns whether that one asks to be refreshed again.
async function reloadMain() {
	const resp = await fetch(location.href, { cache: "no-store" });
	if (!resp.ok) {
		return true;
	}
	const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
	const next = doc.getElementById("main");
	if (!next) {
		return true;
	}
	document.getElementById("main").replaceChildren(...next.childNodes);
	return "refresh" in next.dataset;
}

// refresh reloads the page's <main> every few seconds until the page says
// that nothing on it is in progress any more.
async function refresh(main) {
	const every = Number(main.dataset.refresh) || 3000;
	for (;;) {
		await sleep(every);
		if (document.hidden) {
			continue;
		}
		try {
			if (!(await reloadMain())) {
				return;
			}
		} catch (e) {
			// try again at the next tick
		}
	}
}

{
	const pre = document.querySelector("pre#log[data-follow]");
	if (pre) {
		followLog(pre);
	}
	const main = document.querySelector("main[data-refresh]");
	if (main) {
		refresh(main);
	}
}
