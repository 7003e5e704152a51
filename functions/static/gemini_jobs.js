// Gemini batch jobs (issue 27): a self-contained section of the dashboard, refreshed on
// each refresh of the page from /api/v1/stats with app.js's token-checked `api`
// (textContent only); hidden, and not asked for, with the offline tagger.
"use strict";

async function refreshGeminiJobs() {
  if (offline()) return;  // the offline tagger has no Batch API: the section is hidden
  let stats;
  try { stats = await api("api/v1/stats"); } catch (error) { return; }  // app.js reports it
  const jobs = stats.gemini_batches || { jobs: {}, recent: [] };
  $("gj-waiting").textContent = String(stats.tasks.waiting_batch ?? 0);
  $("gj-counts").textContent = Object.entries(jobs.jobs).map(([s, n]) => `${n} ${s}`).join(", ") || "none yet";
  const body = $("gemini-jobs").tBodies[0];
  body.replaceChildren();
  for (const job of jobs.recent) {
    const row = body.insertRow();
    for (const [value, cls] of [[job.job_id.slice(0, 12)], [job.state, `status-${job.state}`],
      [job.tasks], [job.input], [job.created_at.replace("T", " ").slice(0, 19)],
      [job.error || ""]]) {
      const cell = row.insertCell();
      cell.textContent = String(value);
      if (cls) cell.className = cls;
    }
  }
  labelCells($("gemini-jobs"));
}

// refreshed with the rest of the page (app.js says when), so a token just entered counts
document.addEventListener("dashboard-refreshed", refreshGeminiJobs);
