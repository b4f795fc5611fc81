-- wrk script: create customers (valid CFDI data), keeping the -H headers.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"legalName": "Bench Customer", "taxId": "ABC101010111", "taxSystem": "601", "email": "bench@example.com", "defaultInvoiceUse": "G03", "addressStreet": "Calle", "addressExterior": "1", "addressNeighborhood": "Centro", "addressCity": "Monterrey", "addressMunicipality": "Monterrey", "addressZip": "64000", "addressState": "Nuevo Leon"}'
