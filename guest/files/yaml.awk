# YAML flattener for the kova test guest, which has no YAML library (run by busybox awk). It
# turns the block YAML of cloud-init files into `path<TAB>value` lines, e.g.
#   ethernets.eth0.addresses[0]<TAB>10.0.0.5/24
#   runcmd[1][0]<TAB>ls
# Covered: nested maps and sequences (also `- key: v` items and sequences at their key's
# indentation), plain/single/double-quoted scalars, flow sequences of scalars, literal (|) and
# folded (>) block scalars, comments on their own line. Not covered: anchors, flow maps,
# multi-line flow or quoted scalars. Values escape `\` as `\\` and newline as `\n`, so the
# guest decodes them exactly with printf '%b'.
function esc(v) { gsub(/\\/, "\\\\", v); gsub(/\n/, "\\n", v); return v }
function emit1(p, v) { printf "%s\t%s\n", p, esc(v) }
function unquote(v,   q, out, i, c) {
  q = substr(v, 1, 1)
  if (q == "'" && substr(v, length(v), 1) == "'" && length(v) >= 2) {
    v = substr(v, 2, length(v) - 2); gsub(/''/, "'", v); return v
  }
  if (q == "\"" && substr(v, length(v), 1) == "\"" && length(v) >= 2) {
    v = substr(v, 2, length(v) - 2); out = ""
    for (i = 1; i <= length(v); i++) {
      c = substr(v, i, 1)
      if (c == "\\" && i < length(v)) {
        i++; c = substr(v, i, 1)
        if (c == "n") c = "\n"; else if (c == "t") c = "\t"
      }
      out = out c
    }
    return out
  }
  sub(/[ \t]+#.*$/, "", v)
  sub(/[ \t]+$/, "", v)
  return v
}
# Splits "[a, 'b, c', d]" into items at commas outside quotes.
function emitflow(p, v,   body, n, i, c, q, item) {
  body = substr(v, 2, length(v) - 2); n = 0; q = ""; item = ""
  for (i = 1; i <= length(body); i++) {
    c = substr(body, i, 1)
    if (q != "") { item = item c; if (c == q) q = ""; continue }
    if (c == "'" || c == "\"") { q = c; item = item c; continue }
    if (c == ",") { emitflowitem(p, n++, item); item = ""; continue }
    item = item c
  }
  if (item ~ /[^ \t]/) emitflowitem(p, n++, item)
}
function emitflowitem(p, n, item) { gsub(/^[ \t]+|[ \t]+$/, "", item); emit1(p "[" n "]", unquote(item)) }
function emit(p, v) {
  if (v ~ /^\[.*\][ \t]*$/) { sub(/[ \t]+$/, "", v); emitflow(p, v) } else emit1(p, unquote(v))
}
function join(p, k) { return p == "" ? k : p "." k }
# Index where a "key: value" line's colon is, or 0 when the content is not a mapping entry.
function keyend(s,   q, j) {
  q = substr(s, 1, 1)
  if (q == "'" || q == "\"") {
    j = index(substr(s, 2), q); if (j == 0) return 0
    j = j + 1
    return (substr(s, j + 1, 1) == ":" && (j + 1 == length(s) || substr(s, j + 2, 1) == " ")) ? j + 1 : 0
  }
  if (match(s, /^[^ #\-\[{][^:]*:( |$)/) || match(s, /^-[^ ][^:]*:( |$)/)) return index(s, ":")
  return 0
}
function push(ind, p, t) { sp++; sind[sp] = ind; spath[sp] = p; stype[sp] = t; scount[sp] = 0 }
function flushblock(   v) {
  v = blk
  if (bchomp == "-") sub(/\n+$/, "", v)
  else if (bchomp != "+") { sub(/\n+$/, "", v); if (v != "") v = v "\n" }
  if (bstyle == ">") { gsub(/\n/, " ", v); sub(/ $/, (bchomp == "-" ? "" : "\n"), v) }
  emit1(bpath, v); inblock = 0
}
# Handles one entry at indentation ind (its container is on top of the stack).
function entry(ind, s,   k, key, val, p) {
  if (stype[sp] == "seq") {
    p = spath[sp] "[" scount[sp]++ "]"
    if (s == "-") { pending = p; pind = ind; return }
    s = substr(s, 3); sub(/^ +/, "", s)
    if (s ~ /^- / || s == "-") { push(ind + 2, p, "seq"); entry(ind + 2, s); return }
    if (keyend(s) > 0) { push(ind + 2, p, "map"); entry(ind + 2, s); return }
    if (s ~ /^[|>]/) { startblock(p, s, ind); return }
    emit(p, s); return
  }
  k = keyend(s)
  if (k == 0) return
  key = unquote(substr(s, 1, k - 1)); val = substr(s, k + 1); sub(/^ +/, "", val)
  p = join(spath[sp], key)
  if (val == "" || val ~ /^#/) { pending = p; pind = ind; return }
  if (val ~ /^[|>]/) { startblock(p, val, ind); return }
  emit(p, val)
}
function startblock(p, hdr, ind) {
  inblock = 1; bpath = p; bstyle = substr(hdr, 1, 1); bchomp = ""; blk = ""; bind = -1; bparent = ind
  if (hdr ~ /^.[-+]/) bchomp = substr(hdr, 2, 1)
}
BEGIN { sp = 0; push(-1, "", "map"); sind[sp] = 0; pending = ""; inblock = 0 }
{
  sub(/\r$/, "")
  line = $0
  if (inblock) {
    if (line ~ /^[ ]*$/) { blk = blk "\n"; next }
    match(line, /^ */); ind = RLENGTH
    if (bind < 0) bind = ind
    if (ind >= bind && ind > bparent) { blk = blk substr(line, bind + 1) "\n"; next }
    flushblock()
  }
  if (line ~ /^[ ]*(#.*)?$/ || line ~ /^(---|\.\.\.)[ ]*$/) next
  match(line, /^ */); ind = RLENGTH; s = substr(line, ind + 1)
  while (sp > 1 && (sind[sp] > ind || (sind[sp] == ind && stype[sp] == "seq" && !(s ~ /^- / || s == "-")))) sp--
  if (pending != "") {
    if (ind > pind) push(ind, pending, (s ~ /^- / || s == "-") ? "seq" : "map")
    else if (ind == pind && (s ~ /^- / || s == "-") && stype[sp] == "map") push(ind, pending, "seq")
    pending = ""
  }
  entry(ind, s)
}
END { if (inblock) flushblock() }
