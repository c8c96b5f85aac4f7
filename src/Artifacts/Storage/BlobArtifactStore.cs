using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Azure;
using Azure.Core;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// An Azure Blob Storage container (and optional prefix) as an artifact store. Block-blob uploads are atomic: a blob
/// only becomes visible when its block list commits, so readers never see half an artifact. Each committed blob
/// carries its SHA-256 in metadata (<c>sha256</c>); committing the same content again is a no-op, which makes
/// re-runs idempotent and cheap.
/// </summary>
/// <remarks>
/// Retries: build the container client with <see cref="CreateClientOptions"/>, which turns the SDK's own retries off
/// (<c>Retry.MaxRetries = 0</c>), and wrap the store with <see cref="StorageResilience"/> (what
/// <see cref="ArtifactStores.Open"/> does): the Polly pipeline then owns timeouts, retries and the circuit breaker,
/// and a failed call is retried by exactly one layer.
/// </remarks>
public sealed class BlobArtifactStore : IArtifactStore
{
    /// <summary>Blob metadata key holding the lower-case hex SHA-256 of the content.</summary>
    public const string Sha256MetadataKey = "sha256";

    private readonly BlobContainerClient _container;
    private readonly string _prefix;
    private readonly string _baseUri;
    private int _containerChecked;

    /// <summary>Uses <paramref name="container"/>; <paramref name="prefix"/> (may be empty) is prepended to every path.</summary>
    public BlobArtifactStore(BlobContainerClient container, string? prefix = null)
    {
        ArgumentNullException.ThrowIfNull(container);
        _container = container;
        string trimmed = (prefix ?? "").Trim('/');
        _prefix = trimmed.Length == 0 ? "" : ArtifactPath.Validate(trimmed) + "/";
        // Never the query: a SAS signature must not reach logs or manifests.
        _baseUri = new UriBuilder(container.Uri) { Query = "" }.Uri.GetLeftPart(UriPartial.Path).TrimEnd('/');
        Location = _prefix.Length == 0 ? _baseUri : $"{_baseUri}/{_prefix.TrimEnd('/')}";
    }

    /// <summary>SDK client options for stores wrapped by the storage resilience pipeline: SDK retries off (Polly retries).</summary>
    /// <param name="networkTimeout">Per-request network timeout of the SDK's transport.</param>
    public static BlobClientOptions CreateClientOptions(TimeSpan? networkTimeout = null)
    {
        var options = new BlobClientOptions();
        options.Retry.MaxRetries = 0;
        if (networkTimeout is { } timeout) options.Retry.NetworkTimeout = timeout;
        return options;
    }

    /// <summary>A store on a container addressed by a connection string (account key or SAS inside it).</summary>
    public static BlobArtifactStore FromConnectionString(string connectionString, string container, string? prefix = null, BlobClientOptions? options = null) =>
        new(new BlobContainerClient(connectionString, container, options ?? CreateClientOptions()), prefix);

    /// <summary>A store on a container URL that carries a SAS token in its query.</summary>
    public static BlobArtifactStore FromSasUri(Uri containerSasUri, string? prefix = null, BlobClientOptions? options = null) =>
        new(new BlobContainerClient(containerSasUri, options ?? CreateClientOptions()), prefix);

    /// <summary>A store on a container URL with a token credential (e.g. <c>DefaultAzureCredential</c>: managed identity, workload identity, az login).</summary>
    public static BlobArtifactStore FromCredential(Uri containerUri, TokenCredential credential, string? prefix = null, BlobClientOptions? options = null) =>
        new(new BlobContainerClient(containerUri, credential, options ?? CreateClientOptions()), prefix);

    /// <inheritdoc />
    public string Location { get; }

    /// <inheritdoc />
    public string UriOf(string path) => $"{_baseUri}/{Name(path)}";

    /// <inheritdoc />
    public override string ToString() => Location;

    /// <inheritdoc />
    public async ValueTask<bool> ExistsAsync(string path, CancellationToken cancellationToken = default) =>
        (await _container.GetBlobClient(Name(path)).ExistsAsync(cancellationToken).ConfigureAwait(false)).Value;

    /// <inheritdoc />
    /// <remarks>Downloads the blob to a temporary file that is deleted when the stream is disposed: seekable, and a consistent snapshot.</remarks>
    public async ValueTask<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        var blob = _container.GetBlobClient(Name(path));
        string temp = Path.Combine(Path.GetTempPath(), $"prefpipe-blob-{Guid.NewGuid():N}.tmp");
        var file = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.Asynchronous | FileOptions.DeleteOnClose);
        try
        {
            await blob.DownloadToAsync(file, cancellationToken).ConfigureAwait(false);
            file.Position = 0;
            return file;
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlobNotFound || ex.ErrorCode == BlobErrorCode.ContainerNotFound || ex.Status == 404)
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw new FileNotFoundException($"{UriOf(path)} does not exist in the artifact store {Location}.", UriOf(path), ex);
        }
        catch
        {
            await file.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>Skips the upload when the blob already holds the same content (same SHA-256 in its metadata).</remarks>
    public async ValueTask CommitAsync(string path, string localFile, CancellationToken cancellationToken = default)
    {
        var blob = _container.GetBlobClient(Name(path));
        string sha;
        await using (var hashStream = File.OpenRead(localFile))
            sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(hashStream, cancellationToken).ConfigureAwait(false));
        try
        {
            var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            if (properties.Value.Metadata.TryGetValue(Sha256MetadataKey, out string? existing) && existing == sha) return;
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlobNotFound || ex.ErrorCode == BlobErrorCode.ContainerNotFound || ex.Status == 404)
        {
            // Not there yet: upload below.
        }
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        var options = new BlobUploadOptions { Metadata = new Dictionary<string, string> { [Sha256MetadataKey] = sha } };
        await using var content = new FileStream(localFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        // Overwrite: the new block list replaces the old blob in one step when it commits.
        await blob.UploadAsync(content, options, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    /// <remarks>A conditional write (If-None-Match: *): of two racing writers exactly one wins.</remarks>
    public async ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        var blob = _container.GetBlobClient(Name(path));
        await EnsureContainerAsync(cancellationToken).ConfigureAwait(false);
        var options = new BlobUploadOptions
        {
            Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            Metadata = new Dictionary<string, string> { [Sha256MetadataKey] = Convert.ToHexStringLower(SHA256.HashData(content.Span)) },
        };
        try
        {
            await blob.UploadAsync(BinaryData.FromBytes(content), options, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.BlobAlreadyExists || ex.Status == 409 || ex.Status == 412)
        {
            return false;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (prefix.Length > 0) ArtifactPath.Validate(prefix.TrimEnd('/'));
        var pages = _container.GetBlobsAsync(new GetBlobsOptions { Prefix = _prefix + prefix }, cancellationToken);
        await using var enumerator = pages.GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            try
            {
                if (!await enumerator.MoveNextAsync().ConfigureAwait(false)) yield break;
            }
            catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.ContainerNotFound)
            {
                yield break;
            }
            yield return enumerator.Current.Name[_prefix.Length..];
        }
    }

    /// <inheritdoc />
    public async ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        try
        {
            await _container.GetBlobClient(Name(path)).DeleteIfExistsAsync(DeleteSnapshotsOption.IncludeSnapshots, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            // Nothing to delete.
        }
    }

    private async ValueTask EnsureContainerAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _containerChecked) == 1) return;
        try
        {
            await _container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException ex) when (ex.Status == 403 || ex.ErrorCode == BlobErrorCode.AuthorizationPermissionMismatch || ex.ErrorCode == BlobErrorCode.AuthorizationFailure)
        {
            // A SAS or role scoped to blobs may not create containers; the container then has to exist already,
            // and the upload itself reports it if it does not.
        }
        Volatile.Write(ref _containerChecked, 1);
    }

    /// <summary>The blob client of <paramref name="path"/> (claims take leases on it).</summary>
    internal BlobClient BlobClient(string path) => _container.GetBlobClient(Name(path));

    private string Name(string path) => _prefix + ArtifactPath.Validate(path);
}
