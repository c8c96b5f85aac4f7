using System.Diagnostics;
using SkiaSharp;

namespace PrefPipe.Host.Tests;

/// <summary>What Chromium made of a page: its DOM after load, every console message, and a screenshot.</summary>
internal sealed record RenderedPage(string Dom, IReadOnlyList<string> ConsoleMessages, SKBitmap Screenshot) : IDisposable
{
    public void Dispose() => Screenshot.Dispose();
}

/// <summary>
/// Renders a local HTML file in Debian's <c>chromium</c>, headless (<c>.ci/run</c> installs it; here: <c>apt-get install
/// chromium</c>). Two runs of the browser: <c>--dump-dom</c> for the DOM and <c>--screenshot</c> for the pixels, both with
/// console messages logged to stderr, where they are collected.
/// </summary>
internal static class HeadlessChromium
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>The browser: <c>$CHROMIUM</c>, else <c>chromium</c> or <c>chromium-browser</c> on the PATH.</summary>
    public static string Executable()
    {
        if (Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } configured) return configured;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            foreach (string name in new[] { "chromium", "chromium-browser" })
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        throw new InvalidOperationException("chromium is not installed: the report.html tests render the page in a real browser; install it with `apt-get install chromium` (.ci/run does), or set CHROMIUM to its path");
    }

    public static async Task<RenderedPage> RenderAsync(string htmlFile, int width = 1280, int height = 4000)
    {
        string profile = Directory.CreateTempSubdirectory("prefpipe-chromium-").FullName;
        string screenshot = Path.Combine(profile, "screenshot.png");
        try
        {
            string url = new Uri(Path.GetFullPath(htmlFile)).AbsoluteUri;
            var (dom, domLog) = await RunAsync(profile, ["--dump-dom", url]);
            var (_, shotLog) = await RunAsync(profile, [$"--screenshot={screenshot}", $"--window-size={width},{height}", url]);
            var console = (domLog + shotLog).Split('\n').Where(l => l.Contains(":CONSOLE", StringComparison.Ordinal)).ToList();
            var bitmap = SKBitmap.Decode(screenshot) ?? throw new InvalidOperationException($"chromium wrote no readable screenshot; its log:\n{shotLog}");
            return new RenderedPage(dom, console, bitmap);
        }
        finally
        {
            Directory.Delete(profile, recursive: true);
        }
    }

    private static async Task<(string Stdout, string Stderr)> RunAsync(string profile, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(Executable()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
        foreach (string a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", $"--user-data-dir={Path.Combine(profile, "user")}" }.Concat(args))
            start.ArgumentList.Add(a);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("chromium did not start");
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
            throw new TimeoutException($"chromium did not finish within {Timeout}");
        }
        string output = await stdout, log = await stderr;
        if (process.ExitCode != 0) throw new InvalidOperationException($"chromium exited with {process.ExitCode}:\n{log}");
        return (output, log);
    }
}
