"""The report page's style sheet: inline, no fonts or files from anywhere, readable on screen and paper."""

CSS = """
:root { --ink: #1d2330; --muted: #5b6577; --line: #d9dee7; --accent: #2b5ea7; --paper: #ffffff; --tint: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--tint); color: var(--ink);
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1400px; margin: 0 auto; padding: 24px 32px 64px; background: var(--paper); }
h1 { font-size: 1.9em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.45em; margin: 1.8em 0 0.5em; padding-bottom: 0.2em; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.2em; margin: 1.6em 0 0.3em; }
h4 { font-size: 1em; margin: 1.2em 0 0.4em; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 0.88em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; background: var(--tint);
       padding: 0.05em 0.3em; border-radius: 3px; overflow-wrap: anywhere; }
.meta, .description { color: var(--muted); margin: 0.2em 0 0.8em; }
.section-question { font-size: 1.05em; margin-top: -0.2em; color: var(--muted); }
article { border-top: 1px solid var(--line); margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.92em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: var(--tint); font-weight: 600; }
.table-wrap { overflow-x: auto; }
.facts { display: flex; flex-wrap: wrap; gap: 0 2.5em; align-items: flex-start; }
.facts h3 { margin-top: 0.4em; }
tfoot td { font-weight: 600; }
.settings { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 0 1.2em;
            margin: 0.3em 0 1em; font-size: 0.9em; }
.settings div { display: flex; gap: 0.5em; border-bottom: 1px dotted var(--line); padding: 0.15em 0; }
.settings dt { color: var(--muted); white-space: nowrap; }
.settings dd { margin: 0; overflow-wrap: anywhere; }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1em; }
figure { margin: 0; padding: 0.5em; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: 0.9em; color: var(--muted); margin-top: 0.3em; text-align: center; }
ul.observations li { margin: 0.3em 0; }
p, ul.observations, .section-question { max-width: 62em; }  /* prose lines stay readable on wide screens */
.box { border-left: 5px solid; border-radius: 3px; padding: 0.5em 0.9em; margin: 0.7em 0; }
.box p, .box ul { margin: 0.2em 0; }
.note { border-color: #c99a06; background: #fdf6dc; }
.warn { border-color: #c0392b; background: #fbe9e7; }
.missing { border-color: #7f8c8d; background: #eef0f2; }
.status-missing { color: #7f8c8d; font-style: italic; }
nav.toc { background: var(--tint); border: 1px solid var(--line); border-radius: 4px; padding: 0.4em 1.2em; margin: 1em 0; }
nav.toc h2 { border: 0; margin: 0.4em 0 0.2em; font-size: 1.15em; }
nav.toc ol { margin: 0.2em 0 0.5em; padding-left: 1.4em; }
nav.toc ol ol { list-style: none; padding-left: 0.8em; }
@media print { body { background: #fff; } main { max-width: none; padding: 0; } figure, table { break-inside: avoid; } }
"""
