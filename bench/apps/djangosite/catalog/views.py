import datetime

from django.shortcuts import render

# A fixed catalogue (no database): the page is the same for every request, so the bench can check
# that wsgid and gunicorn serve the same bytes before it measures either.
CATEGORIES = [('tools', 'Tools'), ('garden', 'Garden'), ('kitchen', 'Kitchen')]
PRODUCTS = [
    {
        'sku': 'SKU-%04d' % (i * 37 % 10000),
        'name': 'product number %d' % i,
        'category': CATEGORIES[i % len(CATEGORIES)][0],
        'price': 3.5 + i * 1.75,
        'stock': (i * 7) % 12,
        'added': datetime.date(2024, 1, 1) + datetime.timedelta(days=i * 11),
        'tags': ['new', 'sale', 'eco', 'bulk'][: i % 4],
    }
    for i in range(1, 21)
]


def product_list(request, slug=None):
    products = [p for p in PRODUCTS if slug is None or p['category'] == slug]
    sort = request.GET.get('sort', 'name')
    if sort == 'price':
        products = sorted(products, key=lambda p: p['price'])
    return render(request, 'catalog/product_list.html', {
        'title': 'Catalogue',
        'categories': CATEGORIES,
        'current': slug,
        'sort': sort,
        'products': products,
        'in_stock': sum(1 for p in products if p['stock']),
    })
