// The network's style-row weight vector from the page's controls, as fastst's model files define it:
// rows have a kind ("style" or "identity"), a group (the user-facing style) and a style_size.
//  - blend: each group's weight (normalised to sum 1) goes to its rows;
//  - stroke x in [0, 1]: within a group, rows sorted by style_size, x = 0 the smallest and 1 the
//    largest, piecewise linear in between (the weight split between two neighbouring rows); no stroke
//    (null) puts each group at its row named like the group, else at its smallest size;
//  - strength s: with an identity row, each row's weight moves from the identity row (s = 0) to the
//    row (s = 1), piecewise linearly through its strength rows (kind "strength", same group and
//    style_size, placed at their "strength"); without them w = s * e_row + (1 - s) * e_identity, and
//    above 1 (up to 1.5) that line extrapolates (weights may be negative); without an identity row
//    the page blends pixels: output * s + photo * (1 - s), s in [0, 1].
(function (root) {
  'use strict';

  const MAX_STRENGTH_IDENTITY = 1.5;

  function groups(rows) {
    // User-facing styles: the groups of style rows, in order of first appearance, rows by size.
    const list = [];
    const byName = new Map();
    rows.forEach((row, i) => {
      if (row.kind === 'identity' || row.kind === 'strength') return;
      const name = row.group || row.name;
      if (!byName.has(name)) {
        const g = {name: name, rows: []};
        byName.set(name, g);
        list.push(g);
      }
      byName.get(name).rows.push(i);
    });
    for (const g of list) {
      g.rows.sort((a, b) => ((rows[a].style_size || 0) - (rows[b].style_size || 0)) || (a - b));
    }
    return list;
  }

  function identityRow(rows) {
    return rows.findIndex((row) => row.kind === 'identity');
  }

  function maxStrength(rows) {
    return identityRow(rows) >= 0 ? MAX_STRENGTH_IDENTITY : 1;
  }

  function defaultStroke(rows, indices) {
    // Where a group sits when no stroke is given: its row named like the group, else its smallest size.
    if (indices.length > 1) {
      for (let pos = 0; pos < indices.length; pos++) {
        const row = rows[indices[pos]];
        if (row.name === (row.group || row.name)) return pos / (indices.length - 1);
      }
    }
    return 0;
  }

  function strokeSplit(indices, x) {
    // [[row, weight], ...] for one group at stroke x.
    const m = indices.length;
    if (m === 1) return [[indices[0], 1]];
    const p = x * (m - 1);
    const k = Math.min(Math.floor(p), m - 2);
    const f = p - k;
    return [[indices[k], 1 - f], [indices[k + 1], f]];
  }

  function compose(rows, blend, stroke, strength) {
    // blend: {group name: weight >= 0}; stroke: a number, or null for each group's default. Returns
    // {weights: Float32Array(rows.length), pixelBlend}: pixelBlend is the share of the network's output
    // in the final pixels (1 with an identity row).
    const free = stroke === null || stroke === undefined;
    if (!free && !(stroke >= 0 && stroke <= 1)) throw new RangeError(`stroke must be in [0, 1], got ${stroke}`);
    const top = maxStrength(rows);
    if (!(strength >= 0 && strength <= top)) throw new RangeError(`strength must be in [0, ${top}], got ${strength}`);
    const known = new Map(groups(rows).map((g) => [g.name, g]));
    let total = 0;
    for (const [name, w] of Object.entries(blend)) {
      if (!known.has(name)) throw new RangeError(`unknown style '${name}'`);
      if (!(w >= 0 && Number.isFinite(w))) throw new RangeError(`style weights must be non-negative, got ${w}`);
      total += w;
    }
    if (!(total > 0)) throw new RangeError('style weights are all zero');
    const w = new Float64Array(rows.length);
    for (const [name, bw] of Object.entries(blend)) {
      const members = known.get(name).rows;
      const x = free ? defaultStroke(rows, members) : stroke;
      for (const [i, f] of strokeSplit(members, x)) w[i] += (bw / total) * f;
    }
    const id = identityRow(rows);
    if (id < 0) return {weights: Float32Array.from(w), pixelBlend: strength};
    const out = new Float64Array(rows.length);
    w.forEach((a, row) => {
      if (a) for (const [i, f] of strengthPath(rows, row, id, strength)) out[i] += a * f;
    });
    return {weights: Float32Array.from(out), pixelBlend: 1};
  }

  function strengthPath(rows, row, id, s) {
    // [[row, weight], ...] of one row at strength s: identity (0), its strength rows, the row (1).
    if (s >= 1 || rows[row].kind !== 'style') return row === id ? [[id, 1]] : [[row, s], [id, 1 - s]];
    const r = rows[row];
    const knots = [[0, id]];
    rows.forEach((x, i) => {
      if (x.kind === 'strength' && (x.group || x.name) === (r.group || r.name) && x.style_size === r.style_size) {
        knots.push([x.strength, i]);
      }
    });
    knots.sort((a, b) => a[0] - b[0]);
    knots.push([1, row]);
    // knots run from 0 to 1 and s < 1: some segment holds s
    let k = 0;
    while (!(s <= knots[k + 1][0] && knots[k + 1][0] > knots[k][0])) k++;
    const [s0, i0] = knots[k];
    const [s1, i1] = knots[k + 1];
    const f = (s - s0) / (s1 - s0);
    return [[i0, 1 - f], [i1, f]];
  }

  root.FaststControls = {groups, identityRow, maxStrength, defaultStroke, strokeSplit, strengthPath, compose};
})(typeof self !== 'undefined' ? self : this);
