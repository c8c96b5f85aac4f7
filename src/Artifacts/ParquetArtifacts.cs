using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Parquet;
using Parquet.Serialization;
using PrefPipe.Artifacts.Rows;
using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Artifacts;

/// <summary>What was written: where, how many rows, the file's SHA-256 and its rows' schema version (for the run manifest).</summary>
/// <param name="Path">Store-relative path.</param>
/// <param name="Uri">Full location.</param>
/// <param name="Rows">Row count.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the file.</param>
/// <param name="SchemaVersion">The row type's <c>SchemaVersion</c> (<see cref="RowSchema.VersionOf{T}"/>); 0 when the rows are not a versioned row type.</param>
public sealed record ArtifactInfo(string Path, string Uri, long Rows, string Sha256, int SchemaVersion = 0);

/// <summary>
/// Typed Parquet artifacts, streamed a row group at a time both ways, so memory stays flat for large artifacts.
/// Files are built locally and committed to the store in one step.
/// </summary>
public static class ParquetArtifacts
{
    /// <summary>Rows per row group.</summary>
    public const int DefaultRowGroupSize = 50_000;

    /// <summary>Writes rows as a Parquet artifact (zstd), committing only when complete.</summary>
    public static async Task<ArtifactInfo> WriteAsync<T>(IArtifactStore store, string path, IAsyncEnumerable<T> rows,
        IReadOnlyDictionary<string, string>? metadata = null, int rowGroupSize = DefaultRowGroupSize, CancellationToken cancellationToken = default)
        where T : class, new()
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(rows);
        ArtifactPath.Validate(path);
        string temp = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"prefpipe-{Guid.NewGuid():N}.parquet");
        long count = 0;
        try
        {
            await using (var file = new FileStream(temp, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new List<T>(Math.Min(rowGroupSize, 4096));
                bool first = true;
                async Task FlushAsync()
                {
                    // Parquet.Net's default level is SmallestSize (zstd's slowest, ~12k rows/s for preference rows);
                    // Optimal writes ~10x faster for a few percent more bytes.
                    var options = new ParquetOptions { CompressionMethod = CompressionMethod.Zstd, CompressionLevel = System.IO.Compression.CompressionLevel.Optimal, Append = !first };
                    file.Position = first ? 0 : file.Length;
                    await ParquetSerializer.SerializeAsync(buffer, file, options, first ? metadata : null, cancellationToken).ConfigureAwait(false);
                    count += buffer.Count;
                    buffer.Clear();
                    first = false;
                }
                await foreach (var row in rows.WithCancellation(cancellationToken).ConfigureAwait(false))
                {
                    buffer.Add(row);
                    if (buffer.Count >= rowGroupSize) await FlushAsync().ConfigureAwait(false);
                }
                if (buffer.Count > 0 || first) await FlushAsync().ConfigureAwait(false);
            }
            string sha;
            await using (var check = File.OpenRead(temp))
                sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(check, cancellationToken).ConfigureAwait(false));
            await store.CommitAsync(path, temp, cancellationToken).ConfigureAwait(false);
            return new ArtifactInfo(path, store.UriOf(path), count, sha, RowSchema.VersionOf<T>());
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>Writes an in-memory list of rows.</summary>
    public static Task<ArtifactInfo> WriteAsync<T>(IArtifactStore store, string path, IEnumerable<T> rows,
        IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default) where T : class, new() =>
        WriteAsync(store, path, ToAsync(rows), metadata, DefaultRowGroupSize, cancellationToken);

    /// <summary>Reads a Parquet artifact a row group at a time; files of an older schema version of <typeparamref name="T"/> that changed a column's nullability are upgraded as read (<see cref="LegacyRows"/>).</summary>
    /// <exception cref="InvalidDataException">The file is not Parquet or does not have the columns of <typeparamref name="T"/> (named).</exception>
    public static async IAsyncEnumerable<T> ReadAsync<T>(IArtifactStore store, string path, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        where T : class, new()
    {
        ArgumentNullException.ThrowIfNull(store);
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        int groups;
        LegacyRows.RowGroupReader<T>? legacy;
        try
        {
            await using var reader = await ParquetReader.CreateAsync(stream, leaveStreamOpen: true, cancellationToken: cancellationToken).ConfigureAwait(false);
            groups = reader.RowGroupCount;
            legacy = LegacyRows.ReaderFor<T>(reader.Schema); // an older schema version of T: read in its own shape, upgraded
        }
        // Parquet.Net reports corrupt footers with several exception types (Thrift protocol errors among them).
        catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
        {
            throw new InvalidDataException($"{store.UriOf(path)} is not a readable Parquet file: {ex.Message}", ex);
        }
        for (int g = 0; g < groups; g++)
        {
            stream.Position = 0;
            IList<T> rows;
            try
            {
                rows = legacy is not null
                    ? await legacy(stream, g, cancellationToken).ConfigureAwait(false)
                    : (await ParquetSerializer.DeserializeAsync<T>(stream, null, g, cancellationToken).ConfigureAwait(false)).Data;
            }
            catch (Exception ex) when (ex is InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException or InvalidCastException or KeyNotFoundException)
            {
                throw new InvalidDataException($"{store.UriOf(path)} (row group {g}): cannot read it as {typeof(T).Name}: {ex.Message}", ex);
            }
            foreach (var row in rows) yield return row;
        }
    }

    /// <summary>The column names of a Parquet file, or null when <paramref name="path"/> is not Parquet (JSON lines, say).</summary>
    /// <exception cref="InvalidDataException">A .parquet file that is not Parquet or is corrupt (names the file).</exception>
    public static async Task<IReadOnlySet<string>?> ColumnsAsync(IArtifactStore store, string path, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        await using var stream = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
        bool named = path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase);
        if (!named && !Inputs.UntypedParquet.LooksLikeParquet(stream)) return null;
        await using var reader = await Inputs.UntypedParquet.OpenAsync(stream, store.UriOf(path), cancellationToken).ConfigureAwait(false);
        return reader.Schema.Fields.Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Reads a whole artifact into a list (small artifacts only).</summary>
    public static async Task<List<T>> ReadAllAsync<T>(IArtifactStore store, string path, CancellationToken cancellationToken = default) where T : class, new()
    {
        var list = new List<T>();
        await foreach (var row in ReadAsync<T>(store, path, cancellationToken).ConfigureAwait(false)) list.Add(row);
        return list;
    }

    private static async IAsyncEnumerable<T> ToAsync<T>(IEnumerable<T> rows)
    {
        foreach (var row in rows) yield return row;
        await Task.CompletedTask.ConfigureAwait(false);
    }
}
