using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PrefPipe.Artifacts.Tests.Storage;
using SkiaSharp;

namespace PrefPipe.Host.Tests;

/// <summary>What Chromium made of a page: its DOM after load, every console message, and a screenshot.</summary>
internal sealed record RenderedPage(string Dom, IReadOnlyList<string> ConsoleMessages, SKBitmap Screenshot) : IDisposable
{
    public void Dispose() => Screenshot.Dispose();
}

/// <summary>
/// Renders a local HTML file in headless Chromium through <c>tools/render-page.mjs</c>: puppeteer-core drives the Chromium
/// headless shell of the npm package @sparticuz/chromium, both installed by the build's <c>npm ci</c> in tools/
/// (build/NodeTools.targets), so a fresh machine needs only Node.js; <c>$CHROMIUM</c> names another browser (e.g. Debian's
/// /usr/bin/chromium). The DOM after load, every console message (log, warning, error, CSP refusals), uncaught page
/// errors and failed requests, and a screenshot of the viewport.
/// </summary>
internal static class HeadlessChromium
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    public static async Task<RenderedPage> RenderAsync(string htmlFile, int width = 1280, int height = 4000)
    {
        string script = Path.Combine(AzuriteFixture.RepoRoot(), "tools", "render-page.mjs");
        string work = Directory.CreateTempSubdirectory("prefpipe-chromium-").FullName;
        string screenshot = Path.Combine(work, "screenshot.png");
        try
        {
            var start = new ProcessStartInfo("node") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (string a in new[] { script, Path.GetFullPath(htmlFile), screenshot, width.ToString(CultureInfo.InvariantCulture), height.ToString(CultureInfo.InvariantCulture) })
                start.ArgumentList.Add(a);
            start.Environment["TMPDIR"] = work; // the browser unpacks here: runs never share a half-unpacked one
            using var process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(Timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{script} did not finish within {Timeout}");
            }
            string output = await stdout, log = await stderr;
            if (process.ExitCode != 0)
                throw new InvalidOperationException($"{script} exited with {process.ExitCode} (the build installs its packages with npm ci in tools/):\n{log}");
            using var json = JsonDocument.Parse(output);
            string dom = json.RootElement.GetProperty("dom").GetString()!;
            var console = json.RootElement.GetProperty("console").EnumerateArray().Select(m => m.GetString()!).ToList();
            var bitmap = SKBitmap.Decode(screenshot) ?? throw new InvalidOperationException($"the browser wrote no readable screenshot; its log:\n{log}");
            return new RenderedPage(dom, console, bitmap);
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
