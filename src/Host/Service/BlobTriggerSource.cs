using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Host.Pipelines;

namespace PrefPipe.Host.Service;

/// <summary>
/// The place new prompt files arrive (<c>triggers.blob</c>), opened as a store: a blob container/prefix or a local
/// folder. Each file is claimed once per content: the key is a hash of its name and its SHA-256, so the same file
/// uploaded again, listed again or announced twice starts nothing, while new content under the same name is a new run.
/// </summary>
internal sealed class BlobTriggerSource
{
    private BlobTriggerSource(IArtifactStore store, string? container, string blobPrefix)
    {
        Store = store;
        Container = container;
        BlobPrefix = blobPrefix;
    }

    /// <summary>The store rooted at the trigger's container/prefix (or folder).</summary>
    public IArtifactStore Store { get; }

    /// <summary>The container, for matching BlobCreated events; null for a local folder.</summary>
    public string? Container { get; }

    /// <summary>The blob-name prefix inside the container ("" or ending in '/').</summary>
    public string BlobPrefix { get; }

    /// <summary>Opens the trigger's store. Container/prefix live in the storage account of the pipeline's <c>storage</c>
    /// when that is a URL, else <c>az://</c> (credentials from the environment, see README).</summary>
    /// <exception cref="ArgumentException">The location is malformed or has no credentials; the message names the key.</exception>
    public static BlobTriggerSource Open(BlobTrigger trigger, LoadedPipeline pipeline)
    {
        string location;
        string key;
        if (!string.IsNullOrWhiteSpace(trigger.Location))
        {
            key = "triggers.blob.location";
            location = ArtifactStores.IsBlobLocation(trigger.Location) ? trigger.Location : pipeline.Resolve(trigger.Location);
        }
        else
        {
            key = "triggers.blob.container";
            string prefix = trigger.Prefix.Trim('/');
            string rest = prefix.Length == 0 ? trigger.Container! : $"{trigger.Container}/{prefix}";
            string storage = pipeline.Resolve(pipeline.Definition.Storage);
            location = storage.StartsWith("http", StringComparison.OrdinalIgnoreCase) && Uri.TryCreate(storage, UriKind.Absolute, out var s)
                ? $"{AccountEndpoint(s)}/{rest}"
                : $"az://{rest}";
        }
        try
        {
            var store = ArtifactStores.Open(location);
            var (container, blobPrefix) = ArtifactStores.IsBlobLocation(location) ? SplitBlob(location) : (null, "");
            return new BlobTriggerSource(store, container, blobPrefix);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"{key} ('{ArtifactStores.Redact(location)}'): {ex.Message}", ex);
        }
    }

    /// <summary>Files now under the prefix, as store-relative paths, in name order.</summary>
    public async IAsyncEnumerable<string> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var names = new List<string>();
        await foreach (string path in Store.ListAsync("", cancellationToken).ConfigureAwait(false))
            if (!IsIgnored(path)) names.Add(path);
        foreach (string name in names.Order(StringComparer.Ordinal)) yield return name;
    }

    /// <summary>The store path of an event's blob, or null when the event is for another container or prefix, or for a
    /// file that listing skips too (a path segment starting with '.' or '_': <c>_SUCCESS</c>, <c>_temporary/…</c>, <c>.part</c> files).</summary>
    public string? PathOf(BlobCreatedEvent e) =>
        Container is not null && e.Container == Container && e.BlobName.StartsWith(BlobPrefix, StringComparison.Ordinal) && e.BlobName.Length > BlobPrefix.Length
            && !IsIgnored(e.BlobName[BlobPrefix.Length..])
            ? e.BlobName[BlobPrefix.Length..]
            : null;

    /// <summary>Whether a store path is a marker or temporary file, never a prompts file: a segment starts with '.' or '_'.</summary>
    internal static bool IsIgnored(string path) => path.Split('/').Any(s => s.StartsWith('.') || s.StartsWith('_'));

    /// <summary>The claim for the file at <paramref name="path"/>: key = hash(name, content SHA-256), run id from the key.</summary>
    /// <exception cref="FileNotFoundException">The file is gone.</exception>
    public async Task<RunClaim> ClaimForAsync(string path, string pipelineName, CancellationToken cancellationToken = default)
    {
        string uri = Store.UriOf(path);
        byte[] content;
        await using (var stream = await Store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false))
            content = await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{uri}\n{Convert.ToHexStringLower(content)}")))[..16];
        return new RunClaim("blob", key, $"{pipelineName}-blob-{key}", uri, uri);
    }

    /// <summary>scheme://host[/account] of a container URL (path-style for loopback and IP hosts, as Azurite uses).</summary>
    private static string AccountEndpoint(Uri uri)
    {
        string root = $"{uri.Scheme}://{uri.Authority}";
        if (uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 || uri.IsLoopback)
            root += "/" + uri.AbsolutePath.Trim('/').Split('/')[0];
        return root;
    }

    private static (string Container, string Prefix) SplitBlob(string location)
    {
        string path;
        if (location.StartsWith("az://", StringComparison.OrdinalIgnoreCase)) path = location["az://".Length..].Split('?')[0];
        else
        {
            var uri = new Uri(location);
            path = Uri.UnescapeDataString(uri.AbsolutePath);
            if (uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 || uri.IsLoopback)
                path = string.Join('/', path.Trim('/').Split('/').Skip(1));
        }
        string[] parts = path.Trim('/').Split('/', 2);
        string prefix = parts.Length > 1 ? parts[1].Trim('/') : "";
        return (parts[0], prefix.Length == 0 ? "" : prefix + "/");
    }
}
