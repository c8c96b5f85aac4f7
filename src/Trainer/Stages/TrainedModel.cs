using System.Security.Cryptography;
using PrefPipe.Artifacts.Storage;
using PrefPipe.Text.Templates;
using PrefPipe.Text.Tokenizers;

namespace PrefPipe.Trainer.Stages;

/// <summary>A trained model folder a training unit wrote.</summary>
/// <param name="Directory">The local checkpoint folder (Hugging Face layout).</param>
/// <param name="Sha256">SHA-256 of its weight files in name order: downstream stages see new weights as a changed input.</param>
/// <param name="Uri">Where it is kept in a remote store (null on a local store: the folder is in the run already).</param>
public sealed record TrainedModel(string Directory, string Sha256, string? Uri)
{
    /// <summary>Resume state that checkpoints written before <see cref="Checkpoint.StateFolder"/> kept beside the weights.</summary>
    private static readonly string[] NotWeights = Checkpoint.LegacyStateFiles;

    /// <summary>Hashes the weights of <paramref name="directory"/>.</summary>
    public static TrainedModel Of(string directory, string? uri = null)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        // The model's weights only: the folder's own *.safetensors. A checkpoint's optimizer state and PPO's value model are
        // in its training_state subfolder (or, in older checkpoints, beside the weights under the names NotWeights lists).
        foreach (string file in System.IO.Directory.EnumerateFiles(directory, "*.safetensors").Where(f => !NotWeights.Contains(Path.GetFileName(f), StringComparer.Ordinal)).Order(StringComparer.Ordinal))
        {
            using var stream = File.OpenRead(file);
            int read;
            while ((read = stream.Read(buffer)) > 0) sha.AppendData(buffer, 0, read);
        }
        return new TrainedModel(directory, Convert.ToHexStringLower(sha.GetHashAndReset()), uri);
    }

    /// <summary>
    /// The content fingerprint of a model folder: its config, tokenizer files and every weight byte (not file times), the
    /// same on every machine; cached per process while the files keep their names, sizes and times.
    /// </summary>
    public static string Fingerprint(string directory) => ReferencePass.ModelFingerprint(directory);

    /// <summary>The latest checkpoint a training unit left in its work folder (under <paramref name="prefix"/> in the store),
    /// restored from a remote store first when it is only there; null when there is none.</summary>
    public static async Task<string?> LatestAsync(IArtifactStore store, string prefix, string workDirectory, CancellationToken cancellationToken = default)
    {
        await ModelSync.RestoreAsync(store, StagePaths.Join(prefix, "model"), workDirectory, cancellationToken).ConfigureAwait(false);
        return Checkpoint.Latest(workDirectory);
    }

    /// <summary>Keeps <paramref name="checkpoint"/> with the run: uploaded under <paramref name="storePrefix"/> on a remote store.</summary>
    internal static async Task<TrainedModel> KeepAsync(IArtifactStore store, string checkpoint, string storePrefix, CancellationToken cancellationToken)
    {
        string? uri = await ModelSync.UploadAsync(store, checkpoint, storePrefix, cancellationToken).ConfigureAwait(false);
        return Of(checkpoint, uri);
    }
}

/// <summary>How prompts become the policy's ids: the chat-template decision and system prompt ingest used, so every
/// stage feeds the policy the ids generation was fed.</summary>
/// <param name="ChatTemplate">auto, always or never.</param>
/// <param name="SystemPrompt">A system turn put before conversations without one, or null.</param>
public sealed record PromptFormat(ChatTemplateMode ChatTemplate = ChatTemplateMode.Auto, string? SystemPrompt = null)
{
    /// <summary>The policy's prompt encoder in this format.</summary>
    public PromptEncoder Load(string policyDirectory) => PromptEncoder.Load(PrefPipe.Models.Lora.AdapterModels.ModelFolder(policyDirectory), ChatTemplate, SystemPrompt);
}

/// <summary>A file in a store: where a unit reads an input artifact.</summary>
/// <param name="Store">The store.</param>
/// <param name="Path">The path in it.</param>
public sealed record StoreFile(IArtifactStore Store, string Path)
{
    /// <summary>The file's URI, for messages and rejects.</summary>
    public string Uri => Store.UriOf(Path);
}

/// <summary>Paths of a unit's outputs under its prefix.</summary>
internal static class StagePaths
{
    /// <summary><paramref name="prefix"/>/<paramref name="name"/>, or the name alone under an empty prefix.</summary>
    public static string Join(string prefix, string name) => prefix.Length == 0 ? name : $"{prefix}/{name}";

    /// <summary>Removes a training unit's checkpoints and TensorBoard event files (the local folder, and the copies kept in a
    /// remote store): a fresh attempt draws its curves from step 1.</summary>
    public static async Task ClearCheckpointsAsync(IArtifactStore store, string prefix, string workDirectory, CancellationToken cancellationToken)
    {
        if (System.IO.Directory.Exists(workDirectory))
            foreach (string dir in System.IO.Directory.EnumerateDirectories(workDirectory, "checkpoint-*")
                         .Append(System.IO.Path.Combine(workDirectory, Logging.TensorBoardEventWriter.Folder)).Where(System.IO.Directory.Exists))
                System.IO.Directory.Delete(dir, recursive: true);
        await ModelSync.RemoveAsync(store, Join(prefix, "model"), cancellationToken: cancellationToken).ConfigureAwait(false);
        await ModelSync.RemoveAsync(store, Join(prefix, Logging.TensorBoardEventWriter.Folder), cancellationToken: cancellationToken).ConfigureAwait(false);
    }

    /// <summary>On a remote store, uploads the training's TensorBoard event files to <paramref name="prefix"/>/tensorboard/ (on a
    /// local store they are already in the run folder).</summary>
    public static async Task KeepTensorBoardAsync(IArtifactStore store, string prefix, string workDirectory, CancellationToken cancellationToken)
    {
        string folder = System.IO.Path.Combine(workDirectory, Logging.TensorBoardEventWriter.Folder);
        if (!ModelSync.IsRemote(store) || !System.IO.Directory.Exists(folder)) return;
        foreach (string file in System.IO.Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
            await store.CommitAsync(Join(prefix, $"{Logging.TensorBoardEventWriter.Folder}/{System.IO.Path.GetFileName(file)}"), file, cancellationToken).ConfigureAwait(false);
    }
}
