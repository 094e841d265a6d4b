// The hub's shell: which project, the navigation, the theme, the login, and which page
// the URL names.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, request } from "./api";
import { ComparePage } from "./pages/compare";
import { DatasetPage, DatasetsPage } from "./pages/datasets";
import { LineagePage } from "./pages/lineage";
import { LoginPage } from "./pages/login";
import { ModelPage, ModelsPage } from "./pages/models";
import { RunPage } from "./pages/run";
import { RunsPage } from "./pages/runs";
import { navigate, onLinkClick, useRoute } from "./route";
import { ErrorLine, Loading, useLoad } from "./ui";
import "./style.css";

type Theme = "light" | "dark";

function initialTheme(): Theme {
  const kept = localStorage.getItem("lockstep.theme");
  if (kept === "light" || kept === "dark") return kept;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("lockstep.theme", theme);
  }, [theme]);
  return (
    <button
      type="button"
      class="theme"
      aria-pressed={theme === "dark"}
      onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
    >
      {theme === "dark" ? "Light theme" : "Dark theme"}
    </button>
  );
}

interface Who {
  auth: boolean;
  logged_in: boolean;
  user?: string;
  project?: string;
  role?: string;
}

function Shell({ project, who, children }: { project: string; who: Who; children: preact.ComponentChildren }) {
  const { path } = useRoute();
  const p = `/p/${encodeURIComponent(project)}`;
  const projects = useLoad(() => request<{ projects: string[] }>("/api/v1/projects"), [who.user]);
  const link = (to: string, label: string) => (
    <a href={`${p}${to}`} aria-current={path.startsWith(`${p}${to}`) ? "page" : undefined}>
      {label}
    </a>
  );
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={`${p}/runs`}>
          lockstep
        </a>
        <nav aria-label="Hub">
          {link("/runs", "Runs")}
          {link("/datasets", "Datasets")}
          {link("/models", "Models")}
          {link("/lineage", "Lineage")}
        </nav>
        <label class="project">
          Project{" "}
          <select value={project} onChange={(e) => navigate(`/p/${encodeURIComponent((e.target as HTMLSelectElement).value)}/runs`)}>
            {(projects.data?.projects ?? [project]).map((name) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        </label>
        {who.auth ? (
          <span class="who">
            {who.user} ({who.role}){" "}
            <button
              type="button"
              onClick={() => request("/api/v1/hub/logout", { method: "POST" }).then(() => navigate("/login"))}
            >
              Log out
            </button>
          </span>
        ) : null}
        <ThemeToggle />
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

function Page({ project, rest }: { project: string; rest: string[] }) {
  const [view, id] = rest;
  if (view === "runs" && id) return <RunPage project={project} runId={decodeURIComponent(id)} />;
  if (view === "compare") return <ComparePage project={project} />;
  if (view === "datasets" && id) return <DatasetPage project={project} name={decodeURIComponent(id)} />;
  if (view === "datasets") return <DatasetsPage project={project} />;
  if (view === "models" && id) return <ModelPage project={project} name={decodeURIComponent(id)} />;
  if (view === "models") return <ModelsPage project={project} />;
  if (view === "lineage") return <LineagePage project={project} />;
  return <RunsPage project={project} />;
}

function App() {
  const { path } = useRoute();
  const who = useLoad(() => request<Who>("/api/v1/hub/session"), [path === "/login"]);
  useEffect(() => {
    document.addEventListener("click", onLinkClick);
    return () => document.removeEventListener("click", onLinkClick);
  }, []);
  // Judged on a settled answer only: right after a login the previous one is stale.
  const unauthenticated =
    !who.loading &&
    ((who.data !== null && !who.data.logged_in) ||
      (who.error instanceof ApiError && who.error.status === 401));
  useEffect(() => {
    if (unauthenticated && path !== "/login") navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
    if (who.data?.logged_in && (path === "/" || path === "")) {
      navigate(`/p/${encodeURIComponent(who.data.project ?? "default")}/runs`, { replace: true });
    }
  }, [unauthenticated, who.data, path]);
  if (path === "/login") return <LoginPage />;
  if (who.loading) return <Loading label="Opening the hub" />;
  if (unauthenticated) return null;
  if (who.error) return <ErrorLine error={who.error} />;
  const parts = path.split("/").filter(Boolean);
  if (parts[0] !== "p" || !parts[1]) return <Loading label="Opening the hub" />;
  const project = decodeURIComponent(parts[1]);
  return (
    <Shell project={project} who={who.data!}>
      <Page project={project} rest={parts.slice(2)} />
    </Shell>
  );
}

document.documentElement.dataset.theme = initialTheme();
render(<App />, document.getElementById("app")!);
