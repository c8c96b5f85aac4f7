namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// Where runs and artifacts live: a local folder or an Azure Blob container (prefix). Paths are relative,
/// forward-slash names validated by <see cref="ArtifactPath.Validate"/>. Writers publish whole files atomically:
/// a reader never sees a half-written artifact.
/// </summary>
public interface IArtifactStore
{
    /// <summary>The store's location as the user wrote it (folder path or URI), for logs and manifests.</summary>
    string Location { get; }

    /// <summary>The full URI or path of <paramref name="path"/> in this store.</summary>
    string UriOf(string path);

    /// <summary>Whether a committed file exists.</summary>
    ValueTask<bool> ExistsAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Opens a committed file for reading; the stream is seekable.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    ValueTask<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default);

    /// <summary>Publishes a finished local file under <paramref name="path"/>, replacing any previous one, atomically.</summary>
    ValueTask CommitAsync(string path, string localFile, CancellationToken cancellationToken = default);

    /// <summary>Creates a small file only if it does not exist (claims, markers). Returns false when it already existed.</summary>
    ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default);

    /// <summary>Committed files under a prefix ("" for all), as store-relative paths.</summary>
    IAsyncEnumerable<string> ListAsync(string prefix, CancellationToken cancellationToken = default);

    /// <summary>Deletes a file if it exists.</summary>
    ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default);
}

/// <summary>Validation of store-relative names supplied by users (run ids, artifact and blob names).</summary>
public static class ArtifactPath
{
    /// <summary>Throws when <paramref name="path"/> is empty, absolute, uses backslashes, or has empty, "." or ".." segments.</summary>
    /// <exception cref="ArgumentException">The name could escape the store.</exception>
    public static string Validate(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("an artifact path must not be empty", nameof(path));
        if (path.StartsWith('/') || path.Contains('\\', StringComparison.Ordinal) || Path.IsPathRooted(path) || path.Contains(':', StringComparison.Ordinal))
            throw new ArgumentException($"artifact path '{path}' must be relative, with forward slashes and no drive or scheme", nameof(path));
        foreach (string segment in path.Split('/'))
            if (segment.Length == 0 || segment == "." || segment == ".." || segment.Any(char.IsControl))
                throw new ArgumentException($"artifact path '{path}' has an empty, '.', '..' or control-character segment; names must stay inside the store", nameof(path));
        return path;
    }

    /// <summary>Validates a run id or other single name: letters, digits, '-', '_', '.', 1–128 characters, not starting with '.'.</summary>
    public static string ValidateName(string name, string what)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 128 || name[0] == '.' || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            throw new ArgumentException($"{what} '{name}' is not valid: use 1-128 letters, digits, '-', '_' or '.', not starting with '.'", nameof(name));
        return name;
    }
}
