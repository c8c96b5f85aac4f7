using System.Text;

namespace PrefPipe.Artifacts.Storage;

/// <summary>Small whole-file writes through a store's atomic commit.</summary>
public static class ArtifactStoreWrites
{
    /// <summary>
    /// Writes <paramref name="content"/> to <paramref name="path"/> in one step: staged in a temporary local file, then
    /// committed (a rename over the target locally, a block-blob upload on Azure), so readers see the old file or the new
    /// one, never a part.
    /// </summary>
    public static async ValueTask WriteBytesAsync(this IArtifactStore store, string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(store);
        string temp = Path.Combine(Path.GetTempPath(), $"prefpipe-{Guid.NewGuid():N}.tmp");
        try
        {
            await File.WriteAllBytesAsync(temp, content, cancellationToken).ConfigureAwait(false);
            await store.CommitAsync(path, temp, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>As <see cref="WriteBytesAsync"/>, for UTF-8 text.</summary>
    public static ValueTask WriteTextAsync(this IArtifactStore store, string path, string text, CancellationToken cancellationToken = default) =>
        store.WriteBytesAsync(path, Encoding.UTF8.GetBytes(text ?? throw new ArgumentNullException(nameof(text))), cancellationToken);
}
