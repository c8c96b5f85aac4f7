using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Azure.Storage.Blobs;

namespace PrefPipe.Artifacts.Tests.Storage;

/// <summary>
/// Starts Azurite's blob service (tools/node_modules: building this project runs <c>npm ci</c> in tools/ when needed) on 127.0.0.1 with a port the
/// OS picks and a temporary folder, for the whole test collection; stops it (SIGTERM, then the process tree) at the end.
/// A subclass that sets <see cref="WithQueue"/> gets the queue service too. Host.Tests links this file.
/// </summary>
public partial class AzuriteFixture : IAsyncLifetime
{
    /// <summary>Azurite's well-known development account (public, documented by Microsoft; not a secret).</summary>
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private Process? _process;
    private string? _folder;

    /// <summary>Whether the queue service runs too (the full <c>azurite</c> rather than <c>azurite-blob</c>).</summary>
    protected virtual bool WithQueue => false;

    public int Port => BlobPort;

    public int BlobPort { get; private set; }

    public int QueuePort { get; private set; }

    public string BlobEndpoint => $"http://127.0.0.1:{BlobPort}/devstoreaccount1";

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};BlobEndpoint={BlobEndpoint};"
        + (WithQueue ? $"QueueEndpoint=http://127.0.0.1:{QueuePort}/devstoreaccount1;" : "");

    public BlobContainerClient Container(string name) => new(ConnectionString, name, Artifacts.Storage.BlobArtifactStore.CreateClientOptions());

    public async Task InitializeAsync()
    {
        string root = RepoRoot();
        string azurite = Path.Combine(root, "tools", "node_modules", ".bin", WithQueue ? "azurite" : "azurite-blob");
        if (!File.Exists(azurite))
            throw new InvalidOperationException($"Azurite is not installed ({azurite} is missing): building the test project runs 'npm ci' in {Path.Combine(root, "tools")} (build/NodeTools.targets); run it there if it did not.");
        _folder = Directory.CreateTempSubdirectory("prefpipe-azurite-").FullName;
        var start = new ProcessStartInfo(azurite)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] services = WithQueue
            ? ["--blobHost", "127.0.0.1", "--blobPort", "0", "--queueHost", "127.0.0.1", "--queuePort", "0", "--tableHost", "127.0.0.1", "--tablePort", "0"]
            : ["--blobHost", "127.0.0.1", "--blobPort", "0"];
        foreach (string arg in services.Concat(["--location", _folder, "--skipApiVersionCheck", "--loose", "--silent"]))
            start.ArgumentList.Add(arg);
        _process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {azurite}");
        var stderr = new System.Text.StringBuilder();
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        _process.BeginErrorReadLine();

        // Port 0: Azurite binds a free port and prints it; no window where another process takes a port we probed.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (BlobPort == 0 || (WithQueue && QueuePort == 0))
        {
            string? line;
            try
            {
                line = await _process.StandardOutput.ReadLineAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                throw new InvalidOperationException($"Azurite did not report its ports within 60 s. stderr: {stderr}");
            }
            if (line is null) throw new InvalidOperationException($"Azurite exited ({_process.ExitCode}) before listening. stderr: {stderr}");
            var match = ListensOn().Match(line);
            if (!match.Success) continue;
            int port = int.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            if (match.Groups[1].Value == "Blob") BlobPort = port;
            else if (match.Groups[1].Value == "Queue") QueuePort = port;
        }
        _ = DrainAsync(_process.StandardOutput);

        // Wait until it answers a real request.
        var service = new BlobServiceClient(ConnectionString, Artifacts.Storage.BlobArtifactStore.CreateClientOptions());
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await service.GetPropertiesAsync(timeout.Token);
                await OnReadyAsync(timeout.Token);
                break;
            }
            catch (Exception ex) when (attempt < 100 && ex is Azure.RequestFailedException or SocketException or HttpRequestException)
            {
                await Task.Delay(100, timeout.Token);
            }
        }
    }

    /// <summary>Runs once the blob service answers; throw a transient error to be retried until the 60 s run out.</summary>
    protected virtual Task OnReadyAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs before Azurite stops.</summary>
    protected virtual void OnStopping() { }

    public async Task DisposeAsync()
    {
        OnStopping();
        if (_process is { HasExited: false })
        {
            // SIGTERM first so Azurite closes its files; the whole tree is killed if it has not exited after 5 s.
            _ = SendSignal(_process.Id, Sigterm);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        _process?.Dispose();
        if (_folder is not null)
        {
            try { Directory.Delete(_folder, recursive: true); }
            catch (IOException) { }
        }
    }

    private const int Sigterm = 15;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SendSignal(int pid, int signal);

    private static async Task DrainAsync(StreamReader reader)
    {
        while (await reader.ReadLineAsync() is not null) { }
    }

    /// <summary>The repository root: the first folder above the test binaries holding Pipeline.sln.</summary>
    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Pipeline.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Pipeline.sln above {AppContext.BaseDirectory}: run the tests from the repository");
    }

    // azurite-blob says "successfully listens on http://…:PORT", azurite "is successfully listening at http://…:PORT".
    [GeneratedRegex(@"Azurite (Blob|Queue|Table) service (?:successfully listens on|is successfully listening at) https?://[^:\s]+:(\d+)")]
    private static partial Regex ListensOn();
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "azurite";
}
