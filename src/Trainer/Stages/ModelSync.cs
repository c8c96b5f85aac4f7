using PrefPipe.Artifacts.Storage;

namespace PrefPipe.Trainer.Stages;

/// <summary>
/// Keeps trained model folders with the run when the store is remote: the final checkpoint folder, subfolders included
/// (its <see cref="Checkpoint.StateFolder"/> is what a resume needs besides the weights), is uploaded under
/// <c>RUN/STAGE/model/checkpoint-N/…</c>, and restored into the local work folder when a later stage (or a resume in a
/// fresh container) needs it. On a local store the checkpoints already live in the run folder: nothing to do.
/// </summary>
public static class ModelSync
{
    /// <summary>Whether <paramref name="store"/> is remote (blob): only then are model folders copied to it.</summary>
    public static bool IsRemote(IArtifactStore store) => ArtifactStores.IsBlobLocation(store.Location);

    /// <summary>Uploads <paramref name="checkpoint"/> (a checkpoint-N folder) to <paramref name="storePrefix"/>/checkpoint-N, then
    /// removes every other checkpoint under the prefix (an earlier run of the stage, e.g. with more steps, would otherwise be
    /// the highest-numbered one a restore picks); returns its URI, or null on a local store.</summary>
    public static async Task<string?> UploadAsync(IArtifactStore store, string checkpoint, string storePrefix, CancellationToken cancellationToken = default)
    {
        if (!IsRemote(store)) return null;
        string root = $"{storePrefix}/{Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpoint))}";
        foreach (string file in Directory.EnumerateFiles(checkpoint, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            string relative = Path.GetRelativePath(checkpoint, file).Replace(Path.DirectorySeparatorChar, '/');
            await store.CommitAsync($"{root}/{relative}", file, cancellationToken).ConfigureAwait(false);
        }
        await RemoveAsync(store, storePrefix, root + "/", cancellationToken).ConfigureAwait(false);
        return store.UriOf(root);
    }

    /// <summary>On a remote store, deletes the model files kept under <paramref name="storePrefix"/> (but those under <paramref name="keep"/>).</summary>
    public static async Task RemoveAsync(IArtifactStore store, string storePrefix, string? keep = null, CancellationToken cancellationToken = default)
    {
        if (!IsRemote(store)) return;
        var stale = new List<string>();
        await foreach (string path in store.ListAsync(storePrefix + "/", cancellationToken).ConfigureAwait(false))
            if (keep is null || !path.StartsWith(keep, StringComparison.Ordinal)) stale.Add(path);
        foreach (string path in stale) await store.DeleteAsync(path, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>When <paramref name="localDir"/> has no checkpoint and the store holds one under <paramref name="storePrefix"/>, downloads it there.</summary>
    public static async Task RestoreAsync(IArtifactStore store, string storePrefix, string localDir, CancellationToken cancellationToken = default)
    {
        if (!IsRemote(store) || Checkpoint.Latest(localDir) is not null) return;
        await foreach (string path in store.ListAsync(storePrefix + "/", cancellationToken).ConfigureAwait(false))
        {
            string relative = path[(storePrefix.Length + 1)..];
            string target = Path.Combine(localDir, relative.Replace('/', Path.DirectorySeparatorChar));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            await using var source = await store.OpenReadAsync(path, cancellationToken).ConfigureAwait(false);
            await using var file = File.Create(target);
            await source.CopyToAsync(file, cancellationToken).ConfigureAwait(false);
        }
    }
}
