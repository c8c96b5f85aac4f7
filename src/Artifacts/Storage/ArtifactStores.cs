using Azure.Core;
using Azure.Identity;
using Polly;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// Opens an artifact store from the location a user wrote, wrapped in the storage resilience pipeline:
/// <list type="bullet">
/// <item>a local folder path (<c>./runs</c>, <c>/data/runs</c>);</item>
/// <item><c>az://CONTAINER[/PREFIX]</c>: with the connection string in <see cref="ConnectionStringVariable"/>, or else
/// the account URL in <see cref="AccountUrlVariable"/> and <c>DefaultAzureCredential</c> (managed identity);</item>
/// <item>a container URL <c>https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX][?SAS]</c>, or path-style
/// <c>http://127.0.0.1:PORT/ACCOUNT/CONTAINER[/PREFIX]</c> (Azurite): a SAS in the query authenticates itself;
/// otherwise the connection string variable if set, else <c>DefaultAzureCredential</c>.</item>
/// </list>
/// Secrets never appear in <see cref="IArtifactStore.Location"/>, <see cref="IArtifactStore.UriOf"/> or exception messages.
/// </summary>
public static class ArtifactStores
{
    /// <summary>Environment variable with an Azure Storage connection string.</summary>
    public const string ConnectionStringVariable = "PREFPIPE_BLOB_CONNECTION_STRING";

    /// <summary>Environment variable with the blob account URL (https://ACCOUNT.blob.core.windows.net) used with <c>DefaultAzureCredential</c>.</summary>
    public const string AccountUrlVariable = "PREFPIPE_BLOB_ACCOUNT_URL";

    /// <summary>Whether <paramref name="location"/> names Azure Blob Storage rather than a local folder.</summary>
    public static bool IsBlobLocation(string location) =>
        location.StartsWith("az://", StringComparison.OrdinalIgnoreCase) ||
        location.StartsWith("https://", StringComparison.OrdinalIgnoreCase) ||
        location.StartsWith("http://", StringComparison.OrdinalIgnoreCase);

    /// <summary>Opens the store at <paramref name="location"/>.</summary>
    /// <param name="location">Folder path, <c>az://</c> URI or container URL.</param>
    /// <param name="pipeline">Resilience pipeline for every call; the default <see cref="StorageResilience.Build"/> when null.</param>
    /// <param name="environment">Reads environment variables (tests pass their own); <see cref="Environment.GetEnvironmentVariable(string)"/> when null.</param>
    /// <param name="credential">Token credential for URLs without a SAS; <c>DefaultAzureCredential</c> when null.</param>
    /// <exception cref="ArgumentException">The location is malformed or no credentials are configured for it (the message says which variable to set).</exception>
    public static IArtifactStore Open(string location, ResiliencePipeline? pipeline = null, Func<string, string?>? environment = null, TokenCredential? credential = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(location);
        environment ??= Environment.GetEnvironmentVariable;
        IArtifactStore store = IsBlobLocation(location) ? OpenBlob(location, environment, credential) : new LocalArtifactStore(location);
        return new ResilientArtifactStore(store, pipeline ?? StorageResilience.Build());
    }

    /// <summary>
    /// Splits an artifact URI into the store that holds it and its path there: <c>az://c/prefix/file.parquet</c> →
    /// (store <c>az://c/prefix</c>, <c>file.parquet</c>); a local file → (its folder, its name).
    /// </summary>
    /// <exception cref="FileNotFoundException">A local file that does not exist.</exception>
    public static (IArtifactStore Store, string Path) OpenFile(string fileLocation, ResiliencePipeline? pipeline = null, Func<string, string?>? environment = null, TokenCredential? credential = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(fileLocation);
        if (!IsBlobLocation(fileLocation))
        {
            string full = Path.GetFullPath(fileLocation);
            // Opening a file must not create folders (LocalArtifactStore creates its root).
            if (Directory.Exists(full)) throw new FileNotFoundException($"{full} is a directory, expected a file.", full);
            if (!File.Exists(full)) throw new FileNotFoundException($"{full} does not exist.", full);
            return (Open(Path.GetDirectoryName(full)!, pipeline, environment, credential), Path.GetFileName(full));
        }
        string withoutQuery = fileLocation.Split('?', 2)[0];
        string query = fileLocation.Length > withoutQuery.Length ? fileLocation[withoutQuery.Length..] : "";
        int slash = withoutQuery.LastIndexOf('/');
        string name = withoutQuery[(slash + 1)..];
        if (name.Length == 0) throw new ArgumentException($"'{Redact(fileLocation)}' names a folder, not a file", nameof(fileLocation));
        return (Open(withoutQuery[..slash] + query, pipeline, environment, credential), name);
    }

    /// <summary><paramref name="location"/> without a query string (SAS) or any key-like part, for messages.</summary>
    public static string Redact(string location)
    {
        int q = location.IndexOf('?', StringComparison.Ordinal);
        return q < 0 ? location : location[..q] + "?<redacted>";
    }

    private static BlobArtifactStore OpenBlob(string location, Func<string, string?> environment, TokenCredential? credential)
    {
        string? connection = environment(ConnectionStringVariable);
        if (location.StartsWith("az://", StringComparison.OrdinalIgnoreCase))
        {
            var (container, prefix) = SplitContainer(location["az://".Length..], location);
            if (!string.IsNullOrWhiteSpace(connection)) return BlobArtifactStore.FromConnectionString(connection, container, prefix);
            string? account = environment(AccountUrlVariable);
            if (string.IsNullOrWhiteSpace(account) || !Uri.TryCreate(account, UriKind.Absolute, out var accountUri))
                throw new ArgumentException(
                    $"{location}: no Azure credentials configured. Set {ConnectionStringVariable} (a connection string), or {AccountUrlVariable} " +
                    "(https://ACCOUNT.blob.core.windows.net) to use a managed identity, or give the container URL with a SAS.", nameof(location));
            var containerUri = new Uri(accountUri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/" + container);
            return BlobArtifactStore.FromCredential(containerUri, credential ?? new DefaultAzureCredential(), prefix);
        }

        if (!Uri.TryCreate(location, UriKind.Absolute, out var uri) || uri.Host.Length == 0)
            throw new ArgumentException($"'{Redact(location)}' is not a valid blob URL; expected https://ACCOUNT.blob.core.windows.net/CONTAINER[/PREFIX]", nameof(location));
        // Path-style addressing (Azurite, IP hosts): the first segment is the account.
        bool pathStyle = uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 || uri.IsLoopback;
        string path = Uri.UnescapeDataString(uri.AbsolutePath).Trim('/');
        string accountSegment = "";
        if (pathStyle)
        {
            int slash = path.IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0) throw new ArgumentException($"'{Redact(location)}': a path-style URL needs /ACCOUNT/CONTAINER", nameof(location));
            accountSegment = path[..slash] + "/";
            path = path[(slash + 1)..];
        }
        var (containerName, blobPrefix) = SplitContainer(path, Redact(location));
        string endpoint = $"{uri.Scheme}://{uri.Authority}/{accountSegment}";
        var containerUrl = new Uri(endpoint + containerName);
        if (uri.Query.Contains("sig=", StringComparison.OrdinalIgnoreCase))
            return BlobArtifactStore.FromSasUri(new Uri(containerUrl + uri.Query), blobPrefix);
        // The connection string authenticates only the account it names: a URL of another account uses the credential.
        if (!string.IsNullOrWhiteSpace(connection) && SameAccount(connection, endpoint))
            return BlobArtifactStore.FromConnectionString(connection, containerName, blobPrefix);
        return BlobArtifactStore.FromCredential(containerUrl, credential ?? new DefaultAzureCredential(), blobPrefix);
    }

    /// <summary>Whether the connection string's blob endpoint is <paramref name="endpoint"/> (no network call).</summary>
    private static bool SameAccount(string connection, string endpoint)
    {
        try
        {
            var named = new Azure.Storage.Blobs.BlobServiceClient(connection).Uri;
            return string.Equals(named.GetLeftPart(UriPartial.Path).TrimEnd('/'), endpoint.TrimEnd('/'), StringComparison.OrdinalIgnoreCase);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
        {
            return false; // not a usable connection string: never silently used for this URL
        }
    }

    private static (string Container, string? Prefix) SplitContainer(string rest, string shown)
    {
        string[] parts = rest.Trim('/').Split('/', 2);
        string container = parts[0];
        // Azure's container naming rule: 3-63 lower-case letters, digits and single hyphens.
        if (container.Length is < 3 or > 63 || !container.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-') ||
            container.StartsWith('-') || container.EndsWith('-') || container.Contains("--", StringComparison.Ordinal))
            throw new ArgumentException($"'{shown}': container name '{container}' is not valid (3-63 lower-case letters, digits and single hyphens)", nameof(rest));
        string? prefix = parts.Length > 1 && parts[1].Length > 0 ? ArtifactPath.Validate(parts[1].TrimEnd('/')) : null;
        return (container, prefix);
    }
}
