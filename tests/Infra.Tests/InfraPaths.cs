using System.Diagnostics;
using System.Reflection;

namespace PrefPipe.Infra.Tests;

/// <summary>Where the repository and the tools the infra checks run live, from the build's assembly metadata.</summary>
internal static class InfraPaths
{
    private static string Metadata(string key) =>
        typeof(InfraPaths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().SingleOrDefault(a => a.Key == key)?.Value
        ?? throw new InvalidOperationException($"assembly metadata '{key}' is missing: see Infra.Tests.csproj.");

    public static string RepositoryRoot { get; } = Metadata("RepositoryRoot");

    public static string Infra(params string[] parts) => Path.Combine([RepositoryRoot, "infra", .. parts]);

    public static string Tools(params string[] parts) => Path.Combine([RepositoryRoot, "tools", .. parts]);

    /// <summary>The Bicep CLI from the Azure.Bicep.CommandLine.linux-x64 package (PackageDownload in the csproj).</summary>
    public static string Bicep()
    {
        var path = Path.Combine(Metadata("NuGetPackageRoot"), "azure.bicep.commandline.linux-x64", Metadata("BicepCliVersion"), "tools", "bicep");
        if (!File.Exists(path))
            throw new FileNotFoundException($"Bicep CLI not found at {path}: restore tests/Infra.Tests (it downloads Azure.Bicep.CommandLine.linux-x64).", path);
        // NuGet extracts it with the mode the package carries; make sure this user may run it.
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("the Bicep CLI package here is the linux-x64 one.");
        var mode = File.GetUnixFileMode(path);
        const UnixFileMode exec = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        if ((mode & UnixFileMode.UserExecute) == 0) File.SetUnixFileMode(path, mode | exec);
        return path;
    }
}

/// <summary>The result of a finished child process.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError)
{
    public string Output => StandardOutput + StandardError;

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{StandardOutput}\n--- stderr\n{StandardError}";
}

internal static class ChildProcess
{
    /// <summary>Runs a program to completion (at most two minutes) and captures both streams.</summary>
    public static async Task<ProcessResult> RunAsync(string fileName, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        // The Bicep CLI is a .NET app: keep it from writing telemetry or first-run files.
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["BICEP_TELEMETRY_ENABLED"] = "false";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>()) start.Environment[key] = value;

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{fileName} {string.Join(' ', start.ArgumentList)} ran longer than two minutes.");
        }
        return new ProcessResult(process.ExitCode, await stdout, await stderr);
    }
}
