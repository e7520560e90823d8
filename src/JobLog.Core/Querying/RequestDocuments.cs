namespace JobLog.Querying;

/// <summary>An inbound request as the JSON API writes it.</summary>
public sealed record InputRequestDocument
{
    /// <inheritdoc cref="InputRequestLog.UserId"/>
    public string? UserId { get; init; }

    /// <inheritdoc cref="InputRequestLog.Ip"/>
    public string? Ip { get; init; }

    /// <inheritdoc cref="InputRequestLog.Type"/>
    public required InputRequestType Type { get; init; }

    /// <inheritdoc cref="RequestLogBase.Id"/>
    public required Guid Id { get; init; }

    /// <inheritdoc cref="RequestLogBase.Host"/>
    public required string Host { get; init; }

    /// <inheritdoc cref="RequestLogBase.Method"/>
    public required string Method { get; init; }

    /// <inheritdoc cref="RequestLogBase.Path"/>
    public required string Path { get; init; }

    /// <inheritdoc cref="RequestLogBase.Queries"/>
    public string? Queries { get; init; }

    /// <inheritdoc cref="RequestLogBase.IsSecure"/>
    public required bool IsSecure { get; init; }

    /// <inheritdoc cref="RequestLogBase.Slug"/>
    public string? Slug { get; init; }

    /// <inheritdoc cref="RequestLogBase.RequestTimestamp"/>
    public required DateTime RequestTimestamp { get; init; }

    /// <inheritdoc cref="RequestLogBase.RequestHeaders"/>
    public string? RequestHeaders { get; init; }

    /// <inheritdoc cref="RequestLogBase.RequestBody"/>
    public string? RequestBody { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseTimestamp"/>
    public DateTime? ResponseTimestamp { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseCode"/>
    public int? ResponseCode { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseHeaders"/>
    public string? ResponseHeaders { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseBody"/>
    public string? ResponseBody { get; init; }

    /// <inheritdoc cref="RequestLogBase.Status"/>
    public required RequestLogStatus Status { get; init; }

    /// <inheritdoc cref="RequestLogBase.ErrorDescription"/>
    public string? ErrorDescription { get; init; }

    /// <inheritdoc cref="RequestLogBase.ExceptionName"/>
    public string? ExceptionName { get; init; }

    internal static InputRequestDocument From(InputRequestLog e) => new()
    {
        UserId = e.UserId,
        Ip = e.Ip,
        Type = e.Type,
        Id = e.Id,
        Host = e.Host,
        Method = e.Method,
        Path = e.Path,
        Queries = e.Queries,
        IsSecure = e.IsSecure,
        Slug = e.Slug,
        RequestTimestamp = e.RequestTimestamp,
        RequestHeaders = e.RequestHeaders,
        RequestBody = e.RequestBody,
        ResponseTimestamp = e.ResponseTimestamp,
        ResponseCode = e.ResponseCode,
        ResponseHeaders = e.ResponseHeaders,
        ResponseBody = e.ResponseBody,
        Status = e.Status,
        ErrorDescription = e.ErrorDescription,
        ExceptionName = e.ExceptionName,
    };
}

/// <summary>An outbound request as the JSON API writes it, with what it relates to.</summary>
public sealed record OutputRequestDocument
{
    /// <inheritdoc cref="OutputRequestLog.InputRequestId"/>
    public Guid? InputRequestId { get; init; }

    /// <inheritdoc cref="RequestLogBase.Id"/>
    public required Guid Id { get; init; }

    /// <inheritdoc cref="RequestLogBase.Host"/>
    public required string Host { get; init; }

    /// <inheritdoc cref="RequestLogBase.Method"/>
    public required string Method { get; init; }

    /// <inheritdoc cref="RequestLogBase.Path"/>
    public required string Path { get; init; }

    /// <inheritdoc cref="RequestLogBase.Queries"/>
    public string? Queries { get; init; }

    /// <inheritdoc cref="RequestLogBase.IsSecure"/>
    public required bool IsSecure { get; init; }

    /// <inheritdoc cref="RequestLogBase.Slug"/>
    public string? Slug { get; init; }

    /// <inheritdoc cref="RequestLogBase.RequestTimestamp"/>
    public required DateTime RequestTimestamp { get; init; }

    /// <inheritdoc cref="RequestLogBase.RequestHeaders"/>
    public string? RequestHeaders { get; init; }

    /// <inheritdoc cref="RequestLogBase.RequestBody"/>
    public string? RequestBody { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseTimestamp"/>
    public DateTime? ResponseTimestamp { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseCode"/>
    public int? ResponseCode { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseHeaders"/>
    public string? ResponseHeaders { get; init; }

    /// <inheritdoc cref="RequestLogBase.ResponseBody"/>
    public string? ResponseBody { get; init; }

    /// <inheritdoc cref="RequestLogBase.Status"/>
    public required RequestLogStatus Status { get; init; }

    /// <inheritdoc cref="RequestLogBase.ErrorDescription"/>
    public string? ErrorDescription { get; init; }

    /// <inheritdoc cref="RequestLogBase.ExceptionName"/>
    public string? ExceptionName { get; init; }

    /// <inheritdoc cref="OutputRequestLog.RelatedObjects"/>
    public required IReadOnlyList<RelatedObjectDocument> RelatedObjects { get; init; }
    internal static OutputRequestDocument From(OutputRequestLog e) => new()
    {
        InputRequestId = e.InputRequestId,
        Id = e.Id,
        Host = e.Host,
        Method = e.Method,
        Path = e.Path,
        Queries = e.Queries,
        IsSecure = e.IsSecure,
        Slug = e.Slug,
        RequestTimestamp = e.RequestTimestamp,
        RequestHeaders = e.RequestHeaders,
        RequestBody = e.RequestBody,
        ResponseTimestamp = e.ResponseTimestamp,
        ResponseCode = e.ResponseCode,
        ResponseHeaders = e.ResponseHeaders,
        ResponseBody = e.ResponseBody,
        Status = e.Status,
        ErrorDescription = e.ErrorDescription,
        ExceptionName = e.ExceptionName,
        RelatedObjects = e.RelatedObjects.Select(RelatedObjectDocument.From).ToList(),
    };
}

/// <summary>What an outbound request relates to: a command, a task run or an application object.</summary>
public sealed record RelatedObjectDocument
{
    /// <inheritdoc cref="OutputRequestRelatedObject.Id"/>
    public required Guid Id { get; init; }

    /// <inheritdoc cref="OutputRequestRelatedObject.OutputRequestId"/>
    public required Guid OutputRequestId { get; init; }

    /// <inheritdoc cref="OutputRequestRelatedObject.CommandLogId"/>
    public Guid? CommandLogId { get; init; }

    /// <inheritdoc cref="OutputRequestRelatedObject.TaskRunLogId"/>
    public Guid? TaskRunLogId { get; init; }

    /// <inheritdoc cref="OutputRequestRelatedObject.ContentType"/>
    public string? ContentType { get; init; }

    /// <inheritdoc cref="OutputRequestRelatedObject.ObjectId"/>
    public string? ObjectId { get; init; }

    internal static RelatedObjectDocument From(OutputRequestRelatedObject e) => new()
    {
        Id = e.Id,
        OutputRequestId = e.OutputRequestId,
        CommandLogId = e.CommandLogId,
        TaskRunLogId = e.TaskRunLogId,
        ContentType = e.ContentType,
        ObjectId = e.ObjectId,
    };
}
