using System.Runtime.InteropServices;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// Publishes a fully written file under a new name only if that name is free, atomically. <c>File.Move(overwrite: false)</c>
/// is not enough on Unix: .NET checks that the target is absent and then renames, so two racing writers can both "win".
/// Here the kernel decides: <c>link(2)</c> fails with EEXIST when the name is taken; on file systems without hard links
/// <c>renameat2(RENAME_NOREPLACE)</c> does the same; where neither exists, an exclusive create. Windows' MoveFileEx
/// without REPLACE_EXISTING is already atomic.
/// </summary>
internal static partial class NoReplaceMove
{
    private const int EEXIST = 17;
    private const int EINVAL = 22;
    private const int ENOSYS = 38;
    private const int EOPNOTSUPP = 95;
    private const int AtFdCwd = -100;
    private const uint RenameNoReplace = 1;

    /// <summary>Moves <paramref name="source"/> to <paramref name="target"/>; false (and the source removed) when the target exists.</summary>
    public static bool TryMove(string source, string target)
    {
        if (OperatingSystem.IsWindows())
        {
            try
            {
                File.Move(source, target, overwrite: false);
                return true;
            }
            catch (IOException) when (File.Exists(target))
            {
                File.Delete(source);
                return false;
            }
        }

        if (Link(source, target) == 0)
        {
            File.Delete(source);
            return true;
        }
        int error = Marshal.GetLastPInvokeError();
        if (error == EEXIST) return Lost(source);

        // No hard links here (EPERM, ENOTSUP, EXDEV, EMLINK …): let rename refuse to replace instead.
        int renameError;
        try
        {
            if (RenameAt2(AtFdCwd, source, AtFdCwd, target, RenameNoReplace) == 0) return true;
            renameError = Marshal.GetLastPInvokeError();
        }
        catch (EntryPointNotFoundException)
        {
            renameError = ENOSYS; // a C library without renameat2 (glibc < 2.28, musl, macOS)
        }
        if (renameError == EEXIST) return Lost(source);
        if (renameError is not (EINVAL or ENOSYS or EOPNOTSUPP))
        {
            File.Delete(source);
            throw new IOException($"Could not create {target} if absent: link(2) failed with errno {error} and renameat2(RENAME_NOREPLACE) with errno {renameError}.");
        }

        // Neither (some network file systems): an exclusive create still picks one winner.
        return TryCopyExclusive(source, target);
    }

    /// <summary>
    /// The last resort: O_EXCL creates <paramref name="target"/> (one winner among racers) and copies the content in
    /// under an exclusive lock, so a reader meets "in use", never a partial file. Removes <paramref name="source"/>.
    /// </summary>
    internal static bool TryCopyExclusive(string source, string target)
    {
        FileStream output;
        try
        {
            output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        }
        catch (IOException) when (File.Exists(target))
        {
            File.Delete(source);
            return false;
        }
        try
        {
            using (output)
            {
                using (var input = File.OpenRead(source)) input.CopyTo(output);
                output.Flush(flushToDisk: true);
            }
            return true;
        }
        catch
        {
            // Ours, but incomplete (disk full …): never leave it looking committed.
            File.Delete(target);
            throw;
        }
        finally
        {
            File.Delete(source);
        }
    }

    private static bool Lost(string source)
    {
        File.Delete(source);
        return false;
    }

    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Link(string oldPath, string newPath);

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int RenameAt2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);
}
