using System.Diagnostics;
using PrefPipe.Artifacts.Tests.Storage;

namespace PrefPipe.Host.Tests;

/// <summary>The built prefpipe.dll of src/Host as a child process, for tests that kill or run several processes.</summary>
internal static class HostProcess
{
    /// <summary>prefpipe.dll in the same configuration as these tests (it carries its own deps.json).</summary>
    public static string Dll()
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string configuration = output.Parent!.Name, framework = output.Name;
        string dll = Path.Combine(AzuriteFixture.RepoRoot(), "src", "Host", "bin", configuration, framework, "prefpipe.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} is missing: build src/Host (building the tests does)");
        return dll;
    }

    /// <summary>Starts <c>dotnet prefpipe.dll ARGS</c> with output redirected (stderr drained), plus any environment.</summary>
    public static Process Start(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Dll());
        foreach (string arg in args) start.ArgumentList.Add(arg);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start dotnet");
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }
}
