using System.Diagnostics;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Host.Tests.Service;

/// <summary>
/// Starts Azurite's blob and queue services (tools/node_modules, installed by <c>npm ci</c> in tools/) on 127.0.0.1 with
/// ports the OS picks and a temporary folder; sets <c>PREFPIPE_BLOB_CONNECTION_STRING</c> to it for the stores and
/// queues the service opens; stops it (SIGTERM, then the process tree) at the end.
/// </summary>
public sealed partial class AzuriteFixture : IAsyncLifetime
{
    /// <summary>Azurite's well-known development account (public, documented by Microsoft; not a secret).</summary>
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private Process? _process;
    private string? _folder;

    public int BlobPort { get; private set; }

    public int QueuePort { get; private set; }

    public string BlobEndpoint => $"http://127.0.0.1:{BlobPort}/devstoreaccount1";

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};BlobEndpoint={BlobEndpoint};QueueEndpoint=http://127.0.0.1:{QueuePort}/devstoreaccount1;";

    public BlobContainerClient Container(string name) => new(ConnectionString, name);

    public QueueClient Queue(string name) => new(ConnectionString, name);

    public async Task InitializeAsync()
    {
        string root = RepoRoot();
        string azurite = Path.Combine(root, "tools", "node_modules", ".bin", "azurite");
        if (!File.Exists(azurite))
            throw new InvalidOperationException($"Azurite is not installed ({azurite} is missing): run 'npm ci' in {Path.Combine(root, "tools")} (.ci/run does this).");
        _folder = Directory.CreateTempSubdirectory("prefpipe-serve-azurite-").FullName;
        var start = new ProcessStartInfo(azurite) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { "--blobHost", "127.0.0.1", "--blobPort", "0", "--queueHost", "127.0.0.1", "--queuePort", "0",
                     "--tableHost", "127.0.0.1", "--tablePort", "0", "--location", _folder, "--skipApiVersionCheck", "--loose", "--silent" })
            start.ArgumentList.Add(arg);
        _process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {azurite}");
        var stderr = new System.Text.StringBuilder();
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        _process.BeginErrorReadLine();

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (BlobPort == 0 || QueuePort == 0)
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
        Environment.SetEnvironmentVariable(ArtifactStores.ConnectionStringVariable, ConnectionString);

        var service = new BlobServiceClient(ConnectionString);
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                await service.GetPropertiesAsync(timeout.Token);
                await new QueueServiceClient(ConnectionString).GetPropertiesAsync(timeout.Token);
                break;
            }
            catch (Exception ex) when (attempt < 100 && ex is Azure.RequestFailedException or SocketException or HttpRequestException)
            {
                await Task.Delay(100, timeout.Token);
            }
        }
    }

    public async Task DisposeAsync()
    {
        Environment.SetEnvironmentVariable(ArtifactStores.ConnectionStringVariable, null);
        if (_process is { HasExited: false })
        {
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

    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Pipeline.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Pipeline.sln above {AppContext.BaseDirectory}: run the tests from the repository");
    }

    [GeneratedRegex(@"Azurite (Blob|Queue) service is successfully listening at https?://[^:\s]+:(\d+)")]
    private static partial Regex ListensOn();
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "azurite-serve";
}
