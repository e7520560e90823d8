using JobLog.Redaction;
using JobLog.Storage;
using MassTransit;

namespace JobLog.MassTransit.Internal;

/// <summary>
/// The envelope fields of a consumed message as JobLog reads them. MassTransit parses an envelope's ids and addresses
/// when they are first read, and its properties throw on every read when the sender wrote one wrong (an id that is no
/// Guid: <see cref="FormatException"/>; an address that is no absolute URI: <see cref="UriFormatException"/>). JobLog's
/// reads of them faulted a delivery the consumer would have taken (it never reads them), so here such a field is
/// absent; and an address is cut to its column (a sender's megabyte was stored whole on SQLite, and on PostgreSQL
/// made the writer reject the row and keep its degraded copy).
/// </summary>
internal static class EnvelopeFields
{
    /// <summary>The ledger's columns for an address (a task's source address): 2,000 characters.</summary>
    public const int AddressLength = 2000;

    public static Guid? MessageId(MessageContext context) => Read(context, static c => c.MessageId, null);

    public static Guid? RequestId(MessageContext context) => Read(context, static c => c.RequestId, null);

    public static Guid? CorrelationId(MessageContext context) => Read(context, static c => c.CorrelationId, null);

    public static Guid? ConversationId(MessageContext context) => Read(context, static c => c.ConversationId, null);

    public static Uri? SourceAddress(MessageContext context) => Read(context, static c => c.SourceAddress, null);

    public static Uri? DestinationAddress(MessageContext context) => Read(context, static c => c.DestinationAddress, null);

    /// <summary>Whether the envelope names a response address: one that cannot be read is named all the same.</summary>
    public static bool HasResponseAddress(MessageContext context) => Read(context, static c => c.ResponseAddress is not null, true);

    /// <summary>A queue or exchange name from the envelope, within the ledger's name column (cut with '…').</summary>
    public static string? Name(string? name) => name is null ? null : TextBounds.Truncate(name, LedgerModel.NameLength);

    /// <summary>An address's text within the ledger's address column (cut with '…').</summary>
    public static string? Address(string? address) => address is null ? null : TextBounds.Truncate(address, AddressLength);

    // A field as MessageContext gives it, or unreadable when reading it throws (the lambdas are static: no allocation).
    private static T Read<T>(MessageContext context, Func<MessageContext, T> field, T unreadable)
    {
        try
        {
            return field(context);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return unreadable;
        }
    }
}
