using System.Globalization;
using System.Net;
using System.Text;

namespace PrefPipe.Reporting;

/// <summary>
/// Renders a <see cref="RunReport"/> as one self-contained HTML page: inline CSS, charts as <c>data:</c> URIs, no
/// script and no external URL (a Content-Security-Policy that allows only inline styles and data images says so to the
/// browser). Every text from the run (prompts, responses, errors, paths) is HTML-escaped.
/// </summary>
public static class RunReportPage
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private const string Style = """
        body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #1d1d1f; }
        h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
        table { border-collapse: collapse; margin: .6rem 0; } th, td { border: 1px solid #d0d0d0; padding: .3rem .55rem; text-align: left; vertical-align: top; }
        th { background: #f3f3f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
        .status-completed { color: #17702b; } .status-failed, .status-cancelled { color: #b3261e; font-weight: 600; }
        .failure { border: 2px solid #b3261e; background: #fdecea; padding: .6rem 1rem; border-radius: 6px; }
        .mono, code { font-family: "DejaVu Sans Mono", ui-monospace, monospace; font-size: 12px; word-break: break-all; }
        figure { display: inline-block; margin: .5rem 1rem .5rem 0; } figure img { max-width: 560px; width: 100%; border: 1px solid #ddd; }
        .pair, .heldout { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .9rem; margin: .8rem 0; }
        .side { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; } .side > div { background: #fafafa; padding: .4rem .6rem; border-radius: 4px; }
        .text { white-space: pre-wrap; } .muted { color: #666; }
        """;

    /// <summary>The page's HTML (UTF-8 text).</summary>
    public static string Render(RunReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var h = new StringBuilder(64 * 1024);
        h.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
         .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">\n")
         .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
         .Append("<title>run ").Append(E(report.RunId)).Append(" · prefpipe</title>\n<style>\n").Append(Style).Append("</style>\n</head>\n<body>\n");
        h.Append("<h1>run <span class=\"mono\">").Append(E(report.RunId)).Append("</span></h1>\n<p>pipeline <b>").Append(E(report.Pipeline))
         .Append("</b> · status <b class=\"status-").Append(E(report.Status)).Append("\" id=\"run-status\">").Append(E(report.Status)).Append("</b></p>\n");
        if (report.FailedStage is not null || report.Failure is not null)
            h.Append("<div class=\"failure\" id=\"failure\"><b>stage ").Append(E(report.FailedStage ?? "?")).Append(' ').Append(E(report.Status))
             .Append("</b>: <span class=\"text\">").Append(E(report.Failure ?? "no error recorded")).Append("</span></div>\n");

        Stages(h, report.Stages);
        Lineage(h, report);
        if (report.SplitReport.Count > 0)
        {
            h.Append("<h2 id=\"split\">Split report</h2>\n<table id=\"split-report\">\n<tr><th>measure</th><th>value</th></tr>\n");
            foreach (var (k, v) in report.SplitReport) h.Append("<tr><td>").Append(E(k)).Append("</td><td class=\"num\">").Append(E(v)).Append("</td></tr>\n");
            h.Append("</table>\n");
        }
        Charts(h, report.Charts);
        Pairs(h, report.Pairs);
        HeldOut(h, report.HeldOut);
        h.Append("</body>\n</html>\n");
        return h.ToString();
    }

    private static void Stages(StringBuilder h, IReadOnlyList<ReportStage> stages)
    {
        h.Append("<h2 id=\"stages\">Stages</h2>\n<table id=\"stage-table\">\n<tr><th>stage</th><th>status</th><th>rows in</th><th>out</th><th>rejected</th><th>seconds</th><th>notes</th></tr>\n");
        foreach (var s in stages)
        {
            h.Append("<tr><td>").Append(E(s.Name)).Append("</td><td class=\"status-").Append(E(s.Status)).Append("\">").Append(E(s.Status)).Append("</td>")
             .Append("<td class=\"num\">").Append(N(s.RowsIn)).Append("</td><td class=\"num\">").Append(N(s.RowsOut)).Append("</td><td class=\"num\">").Append(N(s.RowsRejected))
             .Append("</td><td class=\"num\">").Append(s.Seconds.ToString("F1", CultureInfo.InvariantCulture)).Append("</td><td>");
            if (s.Error is not null) h.Append("<span class=\"status-failed text\">").Append(E(s.Error)).Append("</span>");
            else h.Append(E(s.Notes));
            if (s.Accounting is not null) h.Append("<br><span class=\"muted\">").Append(E(s.Accounting)).Append("</span>");
            h.Append("</td></tr>\n");
        }
        h.Append("</table>\n");
    }

    private static void Lineage(StringBuilder h, RunReport report)
    {
        h.Append("<h2 id=\"lineage\">Lineage</h2>\n<table id=\"facts\">\n");
        foreach (var (k, v) in report.Facts) h.Append("<tr><th>").Append(E(k)).Append("</th><td class=\"mono\">").Append(E(v)).Append("</td></tr>\n");
        h.Append("</table>\n");
        if (report.Artifacts.Count == 0) return;
        h.Append("<table id=\"artifacts\">\n<tr><th>stage</th><th></th><th>artifact</th><th>rows</th><th>location</th><th>sha256</th></tr>\n");
        foreach (var a in report.Artifacts)
            h.Append("<tr><td>").Append(E(a.Stage)).Append("</td><td>").Append(E(a.Direction)).Append("</td><td>").Append(E(a.Name)).Append("</td><td class=\"num\">")
             .Append(N(a.Rows)).Append("</td><td class=\"mono\">").Append(E(a.Uri)).Append("</td><td class=\"mono\">").Append(E(a.Sha256)).Append("</td></tr>\n");
        h.Append("</table>\n");
    }

    private static void Charts(StringBuilder h, IReadOnlyList<ReportChart> charts)
    {
        h.Append("<h2 id=\"charts\">Charts</h2>\n");
        if (charts.Count == 0) h.Append("<p class=\"muted\">The run wrote no charts.</p>\n");
        foreach (var c in charts)
        {
            h.Append("<figure>");
            if (c.Png.Span.StartsWith(PngSignature))
                h.Append("<img alt=\"").Append(E(c.Path)).Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(c.Png.Span)).Append("\">");
            else
                h.Append("<p class=\"status-failed\">not a PNG file</p>");
            h.Append("<figcaption class=\"mono\">").Append(E(c.Path)).Append("</figcaption></figure>\n");
        }
    }

    private static void Pairs(StringBuilder h, IReadOnlyList<ReportPair> pairs)
    {
        h.Append("<h2 id=\"pairs\">Sample pairs</h2>\n");
        if (pairs.Count == 0) h.Append("<p class=\"muted\">No preference pairs (the rank stage has not completed).</p>\n");
        foreach (var p in pairs)
        {
            h.Append("<div class=\"pair\"><p><b>").Append(E(p.Set)).Append("</b> · <span class=\"mono\">").Append(E(p.PromptId)).Append("</span> · gap ")
             .Append(F(p.ScoreChosen - p.ScoreRejected)).Append(" · judge ").Append(p.JudgeAgrees ? "agrees" : "disagrees").Append(" with the reward model</p>\n")
             .Append("<p class=\"text\">").Append(E(p.Prompt)).Append("</p>\n<div class=\"side\">")
             .Append("<div><b>chosen</b> (candidate ").Append(p.ChosenIndex).Append(", score ").Append(F(p.ScoreChosen)).Append(")<p class=\"text\">").Append(E(p.Chosen)).Append("</p></div>")
             .Append("<div><b>rejected</b> (candidate ").Append(p.RejectedIndex).Append(", score ").Append(F(p.ScoreRejected)).Append(")<p class=\"text\">").Append(E(p.Rejected)).Append("</p></div></div>\n");
            if (p.Verdicts.Count > 0)
            {
                h.Append("<p class=\"muted\">judge verdicts: ");
                h.AppendJoin(", ", p.Verdicts.Select(v => E($"{v.A} vs {v.B}: {(v.Verdict == "a" ? v.A.ToString(CultureInfo.InvariantCulture) : v.Verdict == "b" ? v.B.ToString(CultureInfo.InvariantCulture) : v.Verdict)} ({v.Judge})")));
                h.Append("</p>\n");
            }
            h.Append("</div>\n");
        }
    }

    private static void HeldOut(StringBuilder h, IReadOnlyList<ReportHeldOut> heldOut)
    {
        h.Append("<h2 id=\"heldout\">Held-out samples: start and final policy</h2>\n");
        if (heldOut.Count == 0) h.Append("<p class=\"muted\">No evaluation samples (the evaluate stage has not completed or is not in the plan).</p>\n");
        foreach (var x in heldOut)
        {
            h.Append("<div class=\"heldout\"><p><span class=\"mono\">").Append(E(x.PromptId)).Append("</span>");
            if (x.Prompt is not null) h.Append(": <span class=\"text\">").Append(E(x.Prompt)).Append("</span>");
            h.Append("</p>\n<div class=\"side\">");
            Samples(h, "start", x.Start);
            Samples(h, "final", x.Final);
            h.Append("</div></div>\n");
        }
    }

    private static void Samples(StringBuilder h, string policy, IReadOnlyList<ReportSample> samples)
    {
        h.Append("<div><b>").Append(policy).Append(" policy</b>");
        foreach (var s in samples)
            h.Append("<p class=\"text\">").Append(E(s.Response)).Append("<br><span class=\"muted\">sample ").Append(s.Index).Append(" · reward ").Append(F(s.Reward))
             .Append(policy == "final" ? " · KL " + F(s.Kl) : "").Append("</span></p>");
        h.Append("</div>");
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string N(long n) => n.ToString(CultureInfo.InvariantCulture);

    private static string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
}
