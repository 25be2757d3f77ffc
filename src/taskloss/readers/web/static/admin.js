// Admin page of a taskloss reader study: progress per reader and the CSV export of every rating.
// The admin token is the last part of the page's path (/admin/<token>), sent as a Bearer token.
"use strict";

(() => {
  const token = decodeURIComponent(location.pathname.split("/").pop() || "");
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 15000;

  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        message = (await response.json()).error || message;
      } catch (_) {
        // not JSON: keep the status line
      }
      throw new Error(message);
    }
    return response;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  async function refresh() {
    try {
      const data = await (await api("/api/admin/progress")).json();
      const rows = data.readers.map((reader) => {
        const tr = document.createElement("tr");
        const bar = document.createElement("progress");
        bar.max = reader.total;
        bar.value = reader.rated;
        const barCell = document.createElement("td");
        barCell.append(bar, ` ${Math.round((100 * reader.rated) / Math.max(1, reader.total))} %`);
        tr.append(cell(reader.name), cell(reader.rated), cell(reader.total), barCell,
          cell(reader.last_rated_at || "–"));
        return tr;
      });
      $("readers").replaceChildren(...rows);
      const rated = data.readers.reduce((sum, reader) => sum + reader.rated, 0);
      const total = data.readers.reduce((sum, reader) => sum + reader.total, 0);
      const readers = data.readers.length === 1 ? "1 reader" : `${data.readers.length} readers`;
      $("summary").textContent = `${readers}, scale ${data.scale}, created ${data.created_at}; ${rated} of ${total} ratings stored.`;
      $("status").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    } catch (error) {
      $("status").textContent = `Could not load the progress: ${error.message}`;
    }
  }

  async function exportCsv() {
    try {
      const blob = await (await api("/api/admin/ratings.csv")).blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "ratings.csv";
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (error) {
      $("status").textContent = `Export failed: ${error.message}`;
    }
  }

  $("export").addEventListener("click", exportCsv);
  $("refresh").addEventListener("click", refresh);
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
