// SPDX-License-Identifier: MIT
// The one way this page builds markup: elements and text nodes, never HTML
// strings, so a file name or an error message can never become markup.

/*
 * el('td', {class: 'num', title: name}, 'text', child...): a new element.
 * Attribute values are set with setAttribute and children that are
 * strings become text nodes; null and undefined children are skipped.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined)
      continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined)
      continue;
    node.append(typeof child === 'string' ? document.createTextNode(child)
      : child);
  }
  return node;
}

/* Sets an element's text only when it changed, so live updates do not
 * disturb a screen reader or a text selection for nothing. */
export function setText(node, text) {
  const s = String(text);
  if (node.textContent !== s)
    node.textContent = s;
}

export function byId(id) {
  const node = document.getElementById(id);
  if (node === null)
    throw new Error(`index.html has no #${id}`);
  return node;
}

/* A CSS custom property of the page, for what canvas draws. */
export function cssVar(name, fallback) {
  const v = getComputedStyle(document.documentElement)
    .getPropertyValue(name).trim();
  return v === '' ? fallback : v;
}
