// The provenance part of a job page: the graph drawn by the server (an <img> of
// ProvSAP's PROV-SVG: an image runs nothing), made clickable by a <map> of the same
// walk (ProvSAP's IMAGE-MAP), with the same links as a plain list below it for those
// who do not see the image. Depth and direction redraw both. Only links to this
// server's own pages are kept; every title goes in as text.

import { request } from './common.js';

const IMAGE_MAP = 'IMAGE-MAP';
const SHAPES = new Set(['rect', 'circle', 'poly']);

/** The ProvSAP URL of a walk around ``jobId``. */
export function walkUrl(jobId, depth, direction, format) {
  const query = new URLSearchParams({
    ID: jobId,
    DEPTH: depth,
    DIRECTION: direction,
    RESPONSEFORMAT: format,
  });
  return `/provsap?${query}`;
}

/** Whether an area's link leads to a page of this server (the base URL's). */
export function ownLink(href, base) {
  if (typeof href !== 'string') return false;
  const prefix = `${(base || location.origin).replace(/\/+$/, '')}/`;
  return href.startsWith(prefix) && !/[\s"'<>\\]/.test(href);
}

async function readAreas(url, base) {
  const response = await request(url, { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const body = await response.json();
  const areas = Array.isArray(body.areas) ? body.areas : [];
  return areas.filter((area) => area && ownLink(area.href, base));
}

function showAreas(part, areas) {
  const map = part.querySelector('[data-provenance-map]');
  const list = part.querySelector('[data-provenance-nodes]');
  map.replaceChildren();
  list.replaceChildren();
  const listed = new Set();
  for (const found of areas) {
    const title = String(found.title || found.href);
    if (SHAPES.has(found.shape) && /^[0-9.,\s-]+$/.test(String(found.coords || ''))) {
      const area = document.createElement('area');
      area.setAttribute('shape', found.shape);
      area.dataset.coords = String(found.coords);
      area.setAttribute('href', found.href);
      area.setAttribute('alt', title);
      area.setAttribute('title', title);
      map.append(area);
    }
    if (listed.has(found.href)) continue;
    listed.add(found.href);
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.setAttribute('href', found.href);
    link.textContent = title;
    item.append(link);
    list.append(item);
  }
}

/** Scale the map's areas to the image as shown (fitted to the page, or at full size):
 * ProvSAP's coordinates are those of the image at its natural size. */
export function scaleCoords(coords, scale) {
  return coords
    .split(',')
    .map((value) => String(Math.round(Number(value) * scale)))
    .join(',');
}

function fitAreas(part, image) {
  if (!image.naturalWidth || !image.clientWidth) return;
  const scale = image.clientWidth / image.naturalWidth;
  for (const area of part.querySelectorAll('[data-provenance-map] area')) {
    area.setAttribute('coords', scaleCoords(area.dataset.coords, scale));
  }
}

/** Make the provenance part of the page live (again, once the part was replaced). */
export function enhanceProvenance() {
  const part = document.querySelector('[data-provenance]');
  if (!part || part.dataset.enhanced) return;
  part.dataset.enhanced = '1';
  const jobId = part.dataset.jobId;
  const base = part.dataset.baseUrl;
  const image = part.querySelector('[data-provenance-image]');
  const depth = part.querySelector('[data-provenance-depth]');
  const direction = part.querySelector('[data-provenance-direction]');
  let shown = 0;

  async function draw() {
    const turn = ++shown;
    image.setAttribute('src', walkUrl(jobId, depth.value, direction.value, 'PROV-SVG'));
    try {
      const areas = await readAreas(walkUrl(jobId, depth.value, direction.value, IMAGE_MAP), base);
      if (turn === shown) showAreas(part, areas);
    } catch (failure) {
      if (turn === shown) showAreas(part, []);
    }
    if (turn === shown) fitAreas(part, image);
  }

  // A graph wider than the page is fitted to it, unless its reader wants it at full size
  // (the frame then scrolls); the map follows the size the image is shown at.
  const fullSize = part.querySelector('[data-provenance-full-size]');
  image.classList.add('provenance-fit');
  fullSize.addEventListener('click', () => {
    const full = fullSize.getAttribute('aria-pressed') !== 'true';
    fullSize.setAttribute('aria-pressed', String(full));
    image.classList.toggle('provenance-fit', !full);
    fitAreas(part, image);
  });
  image.addEventListener('load', () => fitAreas(part, image));
  new ResizeObserver(() => fitAreas(part, image)).observe(image);

  part.querySelector('[data-provenance-controls]').hidden = false;
  depth.addEventListener('change', draw);
  direction.addEventListener('change', draw);
  draw();
}
