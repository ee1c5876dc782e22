// The try-it page end to end in Debian's chromium against a running `ff serve` with an API key:
// upload a source and the two-person photo, see two people, map the source to one of them, run
// a job, download the result, and check that it differs from the target only around that face.
// Usage: node try-page.mjs BASE_URL ASSETS_DIR ARTEFACT_DIR API_KEY
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const [base, assets, artefacts, key] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1500 }, acceptDownloads: true });
  page.on("pageerror", (error) => console.error("page error:", error.message));
  await page.goto(base + "/");

  // Without the key the API refuses, and the page says so in words.
  await page.setInputFiles("#target", assets + "/images/two_people.jpg");
  await page.click("#find-faces");
  await page.waitForFunction(() => document.getElementById("error").textContent.includes("unauthorized"));

  await page.fill("#api-key", key);
  await page.dispatchEvent("#api-key", "change");
  await page.setInputFiles("#sources", [assets + "/images/obama.jpg"]);
  await page.click("#find-faces");
  await page.waitForSelector(".person >> nth=1");
  assert.equal(await page.locator(".person").count(), 2, "two people in the photo");
  assert.equal(await page.locator("#error").textContent(), "");

  await page.selectOption('select.mapping[data-person="0"]', "0");
  await page.selectOption("#output-format", "png");
  await page.click("#run");
  try {
    await page.waitForSelector("#download", { timeout: 180_000 });
  } catch (error) {
    await page.screenshot({ path: artefacts + "/ui-test.png", fullPage: true });
    console.error("status:", await page.locator("#status").textContent(), "error:", await page.locator("#error").textContent());
    throw error;
  }
  assert.match(await page.locator("#status").textContent(), /completed/);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
  await download.saveAs(artefacts + "/result.png");
  await page.screenshot({ path: artefacts + "/ui-test.png", fullPage: true });

  // Where the result differs from the target, against where person 0 is, measured in the page.
  const measured = await page.evaluate(async (key) => {
    const target = document.getElementById("target").files[0];
    const form = new FormData();
    form.append("media", target);
    const faces = await (await fetch("/api/v1/faces", { method: "POST", body: form, headers: { Authorization: "Bearer " + key } })).json();
    const person = faces.people[0];
    const box = faces.faces[person.representative_face].box;
    const pixels = async (source) => {
      const bitmap = await createImageBitmap(source);
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      const context = canvas.getContext("2d");
      context.drawImage(bitmap, 0, 0);
      return context.getImageData(0, 0, bitmap.width, bitmap.height);
    };
    const before = await pixels(target);
    const after = await pixels(await (await fetch(document.getElementById("result-view").src)).blob());
    if (before.width !== after.width || before.height !== after.height) return { sizes: [before.width, after.width] };
    let changed = null;
    for (let y = 0; y < before.height; y++) {
      for (let x = 0; x < before.width; x++) {
        const at = (y * before.width + x) * 4;
        const differs = [0, 1, 2].some((c) => Math.abs(before.data[at + c] - after.data[at + c]) > 16);
        if (!differs) continue;
        changed = changed ? [Math.min(changed[0], x), Math.min(changed[1], y), Math.max(changed[2], x + 1), Math.max(changed[3], y + 1)] : [x, y, x + 1, y + 1];
      }
    }
    return { box, changed };
  }, key);
  console.log("face box", measured.box, "changed", measured.changed);
  assert.ok(measured.changed, "the mapped face was swapped");
  const [x1, y1, x2, y2] = measured.box;
  const margin = Math.max(x2 - x1, y2 - y1);
  const [cx1, cy1, cx2, cy2] = measured.changed;
  assert.ok(cx1 >= x1 - margin && cy1 >= y1 - margin && cx2 <= x2 + margin && cy2 <= y2 + margin,
    `changes ${measured.changed} lie around the mapped face ${measured.box}`);
  console.log("ui test passed; screenshot at " + artefacts + "/ui-test.png");
} finally {
  await browser.close();
}
