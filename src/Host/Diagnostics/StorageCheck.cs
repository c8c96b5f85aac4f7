using Azure;
using Azure.Identity;
using Azure.Storage.Blobs;

namespace PrefPipe.Host.Diagnostics;

/// <summary>Checks that the configured artifact store answers: a local folder is writable, a blob container reachable.</summary>
internal static class StorageCheck
{
    public const string ConnectionStringVariable = "PREFPIPE_BLOB_CONNECTION_STRING";

    public static async Task<DoctorCheck> RunAsync(string location, CancellationToken cancellationToken = default)
    {
        if (location.StartsWith("az://", StringComparison.OrdinalIgnoreCase) ||
            location.StartsWith("https://", StringComparison.OrdinalIgnoreCase) ||
            location.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            return await BlobAsync(location, cancellationToken).ConfigureAwait(false);
        }
        return Local(location);
    }

    private static DoctorCheck Local(string location)
    {
        string full = Path.GetFullPath(location);
        try
        {
            Directory.CreateDirectory(full);
            string probe = Path.Combine(full, $".doctor-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "ok");
            File.Delete(probe);
            return new DoctorCheck("storage", CheckStatus.Ok, $"local folder {full} is writable");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new DoctorCheck("storage", CheckStatus.Fail, $"local folder {full} is not writable: {ex.Message}",
                $"Create {full} with write access, or point --storage / ${DoctorChecks.StorageVariable} elsewhere.");
        }
    }

    private static async Task<DoctorCheck> BlobAsync(string location, CancellationToken cancellationToken)
    {
        string? connection = Environment.GetEnvironmentVariable(ConnectionStringVariable);
        BlobContainerClient container;
        string shown;
        if (location.StartsWith("az://", StringComparison.OrdinalIgnoreCase))
        {
            string rest = location["az://".Length..];
            string name = rest.Split('/', 2)[0];
            if (string.IsNullOrEmpty(connection))
                return new DoctorCheck("storage", CheckStatus.Fail, $"{location}: no connection configured",
                    $"Set {ConnectionStringVariable}, or use the container's endpoint URL (https://ACCOUNT.blob.core.windows.net/CONTAINER) with a managed identity.");
            container = new BlobContainerClient(connection, name);
            shown = $"container '{name}' on {container.Uri.Host}";
        }
        else
        {
            var uri = new Uri(location);
            // A SAS in the URL authenticates itself; otherwise DefaultAzureCredential (managed identity, az login, env).
            container = string.IsNullOrEmpty(uri.Query)
                ? new BlobContainerClient(uri, new DefaultAzureCredential())
                : new BlobContainerClient(uri);
            shown = $"container '{container.Name}' on {uri.Host}";
        }
        try
        {
            bool exists = await container.ExistsAsync(cancellationToken).ConfigureAwait(false);
            return exists
                ? new DoctorCheck("storage", CheckStatus.Ok, $"{shown} answers")
                : new DoctorCheck("storage", CheckStatus.Warn, $"{shown} answers but does not exist yet (created on first run)");
        }
        catch (Exception ex) when (ex is RequestFailedException or AuthenticationFailedException or AggregateException or HttpRequestException)
        {
            return new DoctorCheck("storage", CheckStatus.Fail, $"{shown} does not answer: {ex.GetBaseException().Message.Split('\n')[0]}",
                "Check the account name, network access and credentials (connection string, SAS or managed identity role 'Storage Blob Data Contributor').");
        }
    }
}
