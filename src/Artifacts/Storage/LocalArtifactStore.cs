using System.Runtime.CompilerServices;

namespace PrefPipe.Artifacts.Storage;

/// <summary>A local folder as an artifact store (the embedded default). Commits are renames within the folder's file system.</summary>
public sealed class LocalArtifactStore : IArtifactStore
{
    private readonly string _root;

    /// <summary>Uses (and creates) <paramref name="root"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="root"/> is a file or lies under one; the message names the path.</exception>
    /// <exception cref="IOException">The folder cannot be created (read-only file system, ...); the message names the path.</exception>
    public LocalArtifactStore(string root)
    {
        _root = Path.GetFullPath(root);
        Location = root;
        if (File.Exists(_root)) throw new ArgumentException($"storage {_root} is a file; expected a folder (it is created if missing)", nameof(root));
        for (string? dir = Path.GetDirectoryName(_root); dir is not null; dir = Path.GetDirectoryName(dir))
            if (File.Exists(dir)) throw new ArgumentException($"storage {_root} lies under {dir}, which is a file; expected a folder path", nameof(root));
        try
        {
            Directory.CreateDirectory(_root);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new UnauthorizedAccessException($"storage {_root}: the folder cannot be created: {ex.Message}", ex);
        }
        catch (IOException ex) when (ex is not FileNotFoundException)
        {
            throw new IOException($"storage {_root}: the folder cannot be created: {ex.Message}", ex);
        }
    }

    /// <inheritdoc />
    public string Location { get; }

    /// <inheritdoc />
    public string UriOf(string path) => Full(path);

    /// <inheritdoc />
    public ValueTask<bool> ExistsAsync(string path, CancellationToken cancellationToken = default) => ValueTask.FromResult(File.Exists(Full(path)));

    /// <inheritdoc />
    public ValueTask<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = Full(path);
        if (Directory.Exists(full)) throw new FileNotFoundException($"{full} is a directory, expected a file.", full);
        if (!File.Exists(full)) throw new FileNotFoundException($"{full} does not exist in the artifact store {Location}.", full);
        return ValueTask.FromResult<Stream>(new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous));
    }

    /// <inheritdoc />
    public ValueTask CommitAsync(string path, string localFile, CancellationToken cancellationToken = default)
    {
        string full = Full(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        // Copy next to the target first (same file system), then rename over it: atomic for readers.
        string staging = $"{full}.{Guid.NewGuid():N}.partial";
        try
        {
            File.Copy(localFile, staging, overwrite: true);
            File.Move(staging, full, overwrite: true);
        }
        catch
        {
            // A full disk fails the copy midway: the half-written staging file must not stay and hold the space.
            TryDelete(staging);
            throw;
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryCreateAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        string full = Full(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string staging = $"{full}.{Guid.NewGuid():N}.partial";
        try
        {
            await File.WriteAllBytesAsync(staging, content.ToArray(), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            TryDelete(staging);
            throw;
        }
        // The kernel decides the single winner among racing writers; the file appears only complete.
        return NoReplaceMove.TryMove(staging, full);
    }

    /// <summary>
    /// Deletes staging entries (<c>*.partial</c> files and folders) under <paramref name="prefix"/> that a stopped writer
    /// left behind (a full disk, a killed process), except those <paramref name="keep"/> selects (by store-relative path and
    /// age) because a live writer may still be using them. Returns the paths removed.
    /// </summary>
    public IReadOnlyList<string> RemovePartials(string prefix, Func<string, TimeSpan, bool>? keep = null)
    {
        string folder = prefix.Length == 0 ? _root : Full(prefix.TrimEnd('/'));
        var removed = new List<string>();
        if (!Directory.Exists(folder)) return removed;
        var now = DateTime.UtcNow;
        foreach (string entry in Directory.EnumerateFileSystemEntries(folder, "*.partial", SearchOption.AllDirectories).ToList())
        {
            string relative = Path.GetRelativePath(_root, entry).Replace('\\', '/');
            if (keep?.Invoke(relative, now - File.GetLastWriteTimeUtc(entry)) == true) continue;
            if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
            else if (!TryDelete(entry)) continue;
            removed.Add(relative);
        }
        return removed;
    }

    private static bool TryDelete(string file)
    {
        try
        {
            File.Delete(file);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (prefix.Length > 0) ArtifactPath.Validate(prefix.TrimEnd('/'));
        if (!Directory.Exists(_root)) yield break;
        foreach (string file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (file.EndsWith(".partial", StringComparison.Ordinal)) continue;
            string relative = Path.GetRelativePath(_root, file).Replace('\\', '/');
            if (relative.StartsWith(prefix, StringComparison.Ordinal)) yield return relative;
        }
        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        string full = Full(path);
        // File.Delete ignores a missing file but not a missing folder; both mean "nothing to delete".
        if (File.Exists(full)) File.Delete(full);
        return ValueTask.CompletedTask;
    }

    /// <summary>The file system path of <paramref name="path"/> (claims keep lock files there).</summary>
    internal string FullPath(string path) => Full(path);

    private string Full(string path) => Path.Combine(_root, ArtifactPath.Validate(path));
}
