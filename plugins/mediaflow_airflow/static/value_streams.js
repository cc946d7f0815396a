// The Value Streams dashboard's place in Airflow's UI: the `react_apps` entries of the mediaflow plugin
// (plugins/mediaflow_plugin.py) load this module. It draws nothing of its own: each component frames a page the
// dashboard renders on the server (mediaflow_airflow/dashboard.py), so the pages stay plain HTML that also work
// on their own. What this host decides, and Airflow 3.3's external views do not let a plugin decide, is the
// frame's sandbox: links to Airflow's own pages (target="_top") may take the whole window when a person clicks
// them, and no script in the dashboard ever touches the Airflow page around it.
// Plain JavaScript on the React that Airflow's UI shares (globalThis.React): no build step.
const React = globalThis.React;

const SANDBOX = "allow-scripts allow-same-origin allow-forms allow-downloads allow-top-navigation-by-user-activation";
const STYLE = { border: "none", display: "block", width: "100%", height: "100%" };

function framed(title, path) {
  const Frame = (props) =>
    // relative to the UI's <base href>: right under a base URL with a path (AIRFLOW__API__BASE_URL) too
    React.createElement("iframe", { src: new URL(path(props), document.baseURI).href, title, sandbox: SANDBOX, style: STYLE });
  Frame.displayName = title;
  return Frame;
}

const q = encodeURIComponent;
// keyed by the react_apps entries' names (the UI looks each up as globalThis[name])
globalThis["Value Streams"] = framed("Value Streams", () => "mediaflow/");
globalThis["Value stream"] = framed("Value stream", ({ dagId, runId }) => `mediaflow/runs/${q(dagId)}/${q(runId)}`);
