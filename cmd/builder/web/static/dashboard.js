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
	const badge = document.getElementById("state");
	const reason = document.getElementById("reason");
	const status = document.getElementById("log-status");
	let wait = 1000;
	for (;;) {
		try {
			const resp = await fetch(pre.dataset.follow, { cache: "no-store" });
			if (resp.ok) {
				await stream(resp.body, pre);
				wait = 1000;
			}
		} catch (e) {
			// the build's state decides what happens next
		}
		let live = true;
		try {
			const resp = await fetch(badge.dataset.target, { cache: "no-store" });
			if (resp.ok) {
				const t = await resp.json();
				badge.textContent = t.state;
				badge.className = "badge s-" + t.state;
				reason.textContent = t.reason || "";
				live = t.state === "pending" || t.state === "building";
			}
		} catch (e) {
			// the builder is unreachable: keep trying
		}
		if (!live) {
			status.textContent = "";
			return;
		}
		await sleep(wait);
		wait = Math.min(wait * 2, 10000);
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

// refresh swaps in the server's current <main> until the page says that
// nothing on it is in progress any more.
async function refresh(main) {
	const every = Number(main.dataset.refresh) || 3000;
	for (;;) {
		await sleep(every);
		if (document.hidden) {
			continue;
		}
		try {
			const resp = await fetch(location.href, { cache: "no-store" });
			if (!resp.ok) {
				continue;
			}
			const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
			const next = doc.getElementById("main");
			if (!next) {
				continue;
			}
			main.replaceChildren(...next.childNodes);
			if (!next.dataset.refresh) {
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
